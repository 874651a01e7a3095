"""Benchmarks: each compares against a plain baseline in the same run; figures in docs/."""
