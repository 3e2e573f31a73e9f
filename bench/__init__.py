"""Benchmarks: `python -m bench <name>` (or `make bench BENCH_ARGS=<name>`)."""
