"""The benchmark scripts users rerun: each prints a table and writes its results (`python -m benchmarks.NAME`)."""
