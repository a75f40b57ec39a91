"""Run directories and declarative sweeps: specs (`spec.py`), planning (`plan.py`), execution
(`executors.py`, `worker.py`) and the `factorize sweep` driver (`sweep.py`)."""
