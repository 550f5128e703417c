"""Benchmark checks. The small benchmark itself runs as the README's benchmark snippet (test_readme.py)."""
