"""Benchmark and demonstration commands (run as ``python -m bench.<name>``; not tests)."""
