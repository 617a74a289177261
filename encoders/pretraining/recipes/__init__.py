"""The built-in pretraining recipes: one JSON file per recipe (package data, read with ``importlib.resources``)."""
