"""Measuring policies: parameter and MAC counts, latency percentiles, device metadata."""
