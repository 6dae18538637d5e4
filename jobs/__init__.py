"""Thin entry points: parse, load config, call the pipeline, print a summary."""
