"""Workloads: real video, frame features, projected-feature streams, the SmolLM2 LLM stream,
and the trace files (``workloads.trace``) that golden, hardware and benchmarks share."""
