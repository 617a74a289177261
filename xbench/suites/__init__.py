"""Built-in suites (the offline suite) and the demo run."""
