"""One run of a sweep, in its own process: a subprocess (local executor) or a Ray task.

The worker owns every file of its run directory except the sweep-level manifest: it records the
sweep metadata (`sweep.yaml`, also embedded in `config.yaml`), trains, and on an error writes
the traceback to `error.txt` instead of raising, so one failed run never stops the others.
Whether a run is complete is read back from its directory (`read_outcome`), the single source
of truth for skipping, resuming and reporting.

Run as `python -m factorize.experiments.worker --parent PID` with the task as JSON on stdin.
"""

from __future__ import annotations

import argparse
import inspect
import os
import sys
import threading
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from factorize.errors import FactorizeError
from factorize.experiments.plan import RunTask, config_hash
from factorize.experiments.rundir import CHECKPOINT, ERROR_FILE, RunDir, env_package

INCOMPLETE = "incomplete"
FAILED = "failed"
ORPHANED_EXIT = 75
"""Exit status of a worker whose sweep process died: it stops rather than race a re-run."""


@dataclass
class RunOutcome:
    run_id: str
    status: str
    """The summary's status (`finished`, or e.g. `diverged`), `failed`, or `incomplete`."""
    error: str | None = None
    wall_s: float | None = None


def sweep_meta(task: RunTask) -> dict[str, Any]:
    """What `sweep.yaml` records: where the run sits in the experiment and how it was executed."""
    return {
        "experiment": task.experiment,
        "run_id": task.run_id,
        "algo": task.algo,
        "method": task.method,
        "variant": task.variant,
        "overrides": task.variant_overrides,
        "env": task.env,
        "seed": task.seed,
        "budget": task.budget,
        "config_hash": task.config_hash,
        "env_package": env_package(task.env),
        **task.meta,
    }


def is_complete(task: RunTask) -> bool:
    """A summary exists and was written under this task's config hash."""
    rd = RunDir(task.run_dir)
    meta = rd.sweep_meta()
    return meta is not None and meta.get("config_hash") == task.config_hash and rd.summary() is not None


def read_outcome(task: RunTask, wall_s: float | None = None) -> RunOutcome:
    rd = RunDir(task.run_dir)
    if is_complete(task):
        summary = rd.summary() or {}
        wall = summary.get("time", {}).get("total_s") if isinstance(summary.get("time"), dict) else None
        return RunOutcome(task.run_id, str(summary.get("status", "finished")), None, wall or wall_s)
    error = rd.path / ERROR_FILE
    if error.is_file():
        lines = [ln for ln in error.read_text(errors="replace").splitlines() if ln.strip()]
        return RunOutcome(task.run_id, FAILED, lines[-1] if lines else "failed", wall_s)
    return RunOutcome(task.run_id, INCOMPLETE, None, wall_s)


def record_crash(task: RunTask, message: str) -> RunOutcome:
    """For a worker that died without recording anything (killed, out of memory, segfault)."""
    rd = RunDir(task.run_dir)
    rd.path.mkdir(parents=True, exist_ok=True)
    rd.write_error(message)
    return RunOutcome(task.run_id, FAILED, message.splitlines()[0])


def _train(cfg: Any, out: Path, resume: bool) -> dict[str, Any]:
    """Call `train`, passing `resume=True` where this version of `train` can resume."""
    from factorize.train import train

    params = inspect.signature(train).parameters
    kwargs: dict[str, Any] = {}
    if "progress" in params:
        kwargs["progress"] = False
    if resume and "resume" in params:
        kwargs["resume"] = True
    return train(cfg, out, **kwargs)


def _prepare(task: RunTask) -> bool:
    """Clear what a previous attempt left; True when its checkpoint may be resumed."""
    rd = RunDir(task.run_dir)
    rd.path.mkdir(parents=True, exist_ok=True)
    for tmp in rd.path.glob(".*.tmp"):  # an atomic write cut short by a kill
        tmp.unlink(missing_ok=True)
    previous = rd.sweep_meta()
    same = previous is not None and previous.get("config_hash") == task.config_hash
    stale = ["summary.json", ERROR_FILE] + ([] if same else [CHECKPOINT])
    for name in stale:
        (rd.path / name).unlink(missing_ok=True)
    rd.write_sweep_meta(sweep_meta(task))
    return same and (rd.path / CHECKPOINT).is_file()


def execute(task: RunTask) -> RunOutcome:
    """Train one run into its directory; never raises for a failure of the run itself."""
    t0 = time.perf_counter()
    try:
        resume = _prepare(task)
        cfg = task.build()
        got = config_hash(cfg)
        if got != task.config_hash:
            raise FactorizeError(
                f"config hash {got} differs from the planned {task.config_hash}: does this worker run "
                "the same factorize version as the sweep?"
            )
        _train(cfg, Path(task.run_dir), resume)
    except Exception:  # noqa: BLE001 - any failure of one run is recorded, the sweep goes on
        RunDir(task.run_dir).write_error(traceback.format_exc())
    return read_outcome(task, time.perf_counter() - t0)


def _exit_when_orphaned(parent: int, poll_s: float = 0.2) -> None:
    """Stop this worker if the sweep that started it dies (e.g. SIGKILL), so a re-run never races it."""

    def watch() -> None:
        while True:
            if os.getppid() != parent:
                os._exit(ORPHANED_EXIT)
            time.sleep(poll_s)

    threading.Thread(target=watch, name="orphan-watchdog", daemon=True).start()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m factorize.experiments.worker")
    parser.add_argument("--parent", type=int, default=None, help="exit when this process is gone")
    args = parser.parse_args(argv)
    if args.parent is not None:
        _exit_when_orphaned(args.parent)
    task = RunTask.from_json(sys.stdin.read())
    outcome = execute(task)
    return 0 if outcome.status != INCOMPLETE else 1


if __name__ == "__main__":
    sys.exit(main())
