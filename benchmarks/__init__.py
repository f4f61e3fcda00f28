"""Benchmarks: measured figures and ratios to baselines, written to benchmarks/RESULTS.md."""
