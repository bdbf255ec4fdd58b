"""Measurement of what actually runs: accuracy on the artifact, size on disk, latency on this CPU."""
