"""Benchmarks: ``make bench`` (``python -m benchmarks.bench``); see ``benchmarks/bench.py``."""
