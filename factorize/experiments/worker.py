"""The runs of a sweep, in their own process: a subprocess (local executor) or a Ray task.

A process trains one run, or several that differ only in seed as one population
(`factorize.population`); each run keeps its own directory, outcome and resume point.

The worker owns every file of its run directory except the sweep-level manifest: it records the
sweep metadata (`sweep.yaml`, also embedded in `config.yaml`), trains, and on an error writes
the traceback to `error.txt` instead of raising, so one failed run never stops the others.
Whether a run is complete is read back from its directory (`read_outcome`), the single source
of truth for skipping, resuming and reporting.

Run as `python -m factorize.experiments.worker --parent PID --run-dir DIR` with the tasks as a
JSON list on stdin.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
import traceback
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from factorize.envs import env_notes, env_package
from factorize.errors import FactorizeError
from factorize.experiments import runstate
from factorize.experiments.plan import RunTask, config_hash
from factorize.experiments.rundir import RunDir
from factorize.preemption import PREEMPTED_EXIT, Preempted

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
    cpu_s: float | None = None
    """CPU seconds of the run's whole process (startup included), where the executor can tell."""


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
        "metrics": {"return_mean": env_notes(task.env).get("returns", ""),
                    "win_rate": "fraction of test episodes won (0 where the env has no win)"},
        **task.meta,
    }


def is_complete(task: RunTask) -> bool:
    """A summary exists and was written under this task's config hash."""
    return runstate.completed_hash(Path(task.run_dir)) == task.config_hash


def read_outcome(task: RunTask, wall_s: float | None = None) -> RunOutcome:
    """A run's status as its directory records it."""
    run_dir = Path(task.run_dir)
    if is_complete(task):
        summary = runstate.read_summary(run_dir) or {}
        timing = summary.get("time")
        wall = timing.get("total_s") if isinstance(timing, dict) else None
        return RunOutcome(task.run_id, str(summary.get("status", "finished")), None, wall or wall_s)
    error = runstate.read_error(run_dir)
    if error is not None:
        return RunOutcome(task.run_id, FAILED, error, wall_s)
    return RunOutcome(task.run_id, INCOMPLETE, None, wall_s)


def record_crash(task: RunTask, message: str) -> RunOutcome:
    """For a worker that died without recording anything (killed, out of memory, segfault)."""
    Path(task.run_dir).mkdir(parents=True, exist_ok=True)
    runstate.write_error(Path(task.run_dir), message)
    return RunOutcome(task.run_id, FAILED, message.splitlines()[0])


def _train(cfgs: list[Any], outs: list[Path]) -> None:
    """Train quietly (the sweep shows its own progress), each run from its newest checkpoint if
    it has one (`_prepare` has emptied directories whose checkpoints belong to another config)."""
    from factorize.population import train_population

    train_population(cfgs, outs, progress=False, resume=True)  # a lone run is a population of one


def _extends(task: RunTask, run_dir: Path, previous: dict[str, Any] | None) -> bool:
    """The directory holds this task's run at a smaller budget, finished or not (killed or
    failed: resumed as a run of the same budget would be), with a checkpoint to go on from, and
    nothing in its config is scheduled over the budget (`budget_schedules`): so training on from
    there is the longer run, not a different one. A diverged run is trained again, not extended
    (its last checkpoint is the one before its values blew up)."""
    from factorize.training import budget_schedules

    rundir = RunDir(run_dir)
    if previous is None or not rundir.checkpoints():
        return False
    summary = rundir.summary()
    if summary is not None and summary.get("status") != "finished":
        return False
    try:
        trained = rundir.config().steps
    except FactorizeError:
        return False
    cfg = task.build()
    if trained >= cfg.steps or budget_schedules(cfg):
        return False
    return config_hash(replace(cfg, steps=trained)) == previous.get("config_hash")


def _prepare(task: RunTask) -> bool:
    """Clear what a previous attempt left; True when that attempt's checkpoints may be resumed.

    An attempt under the same config hash keeps its checkpoints (and loses only its stale
    summary or error), and so does one of the same run at a smaller budget (`_extends`: a
    budget raised after a pilot trains on from the old end); a directory from another config,
    or of unknown origin, is emptied.
    """
    run_dir = Path(task.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    for tmp in run_dir.glob(".*.tmp"):  # an atomic write cut short by a kill
        tmp.unlink(missing_ok=True)
    previous = runstate.read_sweep_meta(run_dir)
    same = previous is not None and previous.get("config_hash") == task.config_hash
    same = same or _extends(task, run_dir, previous)
    if same:
        for name in (runstate.SUMMARY_FILE, runstate.ERROR_FILE):
            (run_dir / name).unlink(missing_ok=True)
    else:
        runstate.clear(run_dir)
    runstate.write_sweep_meta(run_dir, sweep_meta(task))
    return same and bool(RunDir(run_dir).checkpoints())


def _build(task: RunTask) -> Any:
    cfg = task.build()
    got = config_hash(cfg)
    if got != task.config_hash:
        raise FactorizeError(
            f"config hash {got} differs from the planned {task.config_hash}: does this worker run "
            "the same factorize version as the sweep?"
        )
    return cfg


def execute(tasks: RunTask | list[RunTask]) -> list[RunOutcome]:
    """Train runs (several: one population) into their directories; never raises for a failure of
    the runs themselves: an error is recorded in every run it left incomplete. On SIGTERM the
    runs checkpoint and `Preempted` propagates (no error: they are unfinished, not failed)."""
    group = [tasks] if isinstance(tasks, RunTask) else tasks
    t0 = time.perf_counter()
    try:
        for task in group:
            _prepare(task)
        _train([_build(task) for task in group], [Path(task.run_dir) for task in group])
    except Preempted:  # checkpoints written; the runs stay incomplete and resume next time
        raise
    except Exception:
        text = traceback.format_exc()
        for task in group:
            if not is_complete(task):
                runstate.write_error(Path(task.run_dir), text)
    wall = time.perf_counter() - t0
    return [read_outcome(task, wall) for task in group]


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
    parser.add_argument("--run-dir", default=None, help="informational: names the run in `ps`")
    args = parser.parse_args(argv)
    if args.parent is not None:
        _exit_when_orphaned(args.parent)
    tasks = [RunTask(**t) for t in json.loads(sys.stdin.read())]
    try:
        outcomes = execute(tasks)
    except Preempted as exc:
        print(f"worker: {exc}", file=sys.stderr)
        return PREEMPTED_EXIT
    return 0 if all(o.status != INCOMPLETE for o in outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
