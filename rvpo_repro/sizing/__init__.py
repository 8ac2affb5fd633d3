"""Sizing one run for its GPUs, from its composed config alone: the model's architecture facts
(shapes) and each rank's peak memory by component (memory), held against `model.gpu_memory_gb`
before the run starts and printed per run by `rvpo-sweep --dry-run`."""
