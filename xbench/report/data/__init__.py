"""Package data of the report stage: X-ARES's published reference table (``xares_published.csv``).

Its source and column notes are in ``xares_published.md`` beside it; :func:`xbench.report.leaderboard.load_published`
reads it through :mod:`importlib.resources`, so it works from an installed wheel.
"""
