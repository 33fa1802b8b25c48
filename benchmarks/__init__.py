"""Benchmarks: scripts that print medians and ratios against a baseline run in the same process."""
