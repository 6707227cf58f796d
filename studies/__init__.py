"""One-off studies and probes, kept apart from the benchmarks users rerun (`python -m studies.NAME`)."""
