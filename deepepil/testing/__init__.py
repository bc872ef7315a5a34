"""Helpers for tests and benchmarks: real services started for the duration of a run."""
