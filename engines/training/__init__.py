"""Fine-tuning XTTS: the engine, the worker process, run folders, options."""
