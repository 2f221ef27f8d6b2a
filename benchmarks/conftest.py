"""Shared settings for the benchmark suites (run with pytest benchmarks/)."""
