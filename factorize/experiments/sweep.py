"""`factorize sweep`: plan a spec's runs, skip the complete ones, execute the rest, keep a manifest.

The sweep directory holds `spec.yaml` (the spec as run), `sweep.json` (every run, its status and
where it lives; rewritten atomically on every change) and one directory per run
(`<env>/<algo>/<variant>/s<seed>`). Nothing here is needed to resume: a re-run reads each run's
own directory, so a sweep killed at any point continues where it stopped.
"""

from __future__ import annotations

import fnmatch
import json
import os
import sys
import threading
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml
from tqdm import tqdm

from factorize.envs import env_has_wins
from factorize.errors import FactorizeError
from factorize.experiments import runstate
from factorize.experiments.executors import make_executor
from factorize.experiments.plan import RunTask, group_runs, plan_runs
from factorize.experiments.rundir import atomic_write
from factorize.experiments.spec import BUDGETS, ExperimentSpec, load_spec_file
from factorize.experiments.specs_index import resolve_spec
from factorize.experiments.worker import FAILED, RunOutcome, is_complete, read_outcome
from factorize.preemption import raise_on_sigterm

MANIFEST = "sweep.json"
SPEC_COPY = "spec.yaml"
LOCK = ".sweep.lock"
PENDING, RUNNING, INTERRUPTED = "pending", "running", "interrupted"


@dataclass
class SweepResult:
    name: str
    out: Path
    total: int
    skipped: int
    """Runs already complete before this invocation."""
    statuses: dict[str, str] = field(default_factory=dict)
    planned: int | None = None
    """Runs the spec plans, where `--only` selected `total` of them."""

    def failed(self) -> list[str]:
        return [rid for rid, s in self.statuses.items() if s == FAILED]

    def counts(self) -> Counter[str]:
        return Counter(self.statuses.values())


def usable_cores() -> int:
    """Cores this process may run on: its CPU affinity, which `taskset`, SLURM and cgroup cpusets
    narrow, not the machine's count, so that a sweep pinned to some cores gives each worker its
    share of those and two pinned sweeps do not oversubscribe the machine."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # no affinity API (macOS, Windows)
        return os.cpu_count() or 1


def load_spec(ref: str) -> ExperimentSpec:
    """A built-in spec by name or a user's spec by path."""
    return load_spec_file(resolve_spec(ref), source=ref)


def _round(x: float | None) -> float | None:
    return None if x is None else round(x, 2)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@contextmanager
def _exclusive(out: Path) -> Iterator[None]:
    """One sweep per output directory at a time (the kernel drops the lock if the sweep dies)."""
    try:
        import fcntl
    except ImportError:  # not POSIX: no lock, as before
        yield
        return
    with open(out / LOCK, "w") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise FactorizeError(f"out: another sweep is writing to {out}") from None
        yield


def run_line(name: str, task: RunTask, outcome: RunOutcome, done: int, todo: int) -> str:
    """The line a sweep without a terminal prints when a run ends, so a log shows progress.

    It names the run, its status, its score (final test return, and the win rate where the env
    has wins) or its error, the run's seconds and how many runs of this invocation are left.
    """
    parts = [f"sweep {name}: [{done}/{todo}] {outcome.run_id} {outcome.status}"]
    summary = runstate.read_summary(Path(task.run_dir)) if outcome.status != FAILED else None
    if summary is not None:
        ret = summary.get("test_return_mean")
        if isinstance(ret, (int, float)):
            parts.append(f"return {ret:.2f}")
        win = summary.get("test_win_rate")
        if isinstance(win, (int, float)) and env_has_wins(task.env):
            parts.append(f"win {win:.2f}")
    elif outcome.error:
        parts.append(f"({outcome.error[:160]})")
    if outcome.wall_s is not None:
        parts.append(f"{outcome.wall_s:.1f} s")
    parts.append(f"{todo - done} left")
    return "  ".join(parts)


HEARTBEAT_S = 600.0
"""How often a sweep without a terminal says where its running runs are: runs of millions of
steps end an hour or more apart, and a log silent that long looks like a hung sweep."""


def heartbeat_line(name: str, running: Sequence[RunTask], done: int, todo: int) -> str:
    """Where the running runs are, from the newest row each has written to its metrics.csv; the
    seeds of one configuration (a population) share a part."""
    groups: dict[str, list[RunTask]] = {}
    for task in running:
        groups.setdefault(task.run_id.rsplit("/", 1)[0], []).append(task)
    parts = []
    for prefix, members in groups.items():
        seeds = ",".join(f"s{t.seed}" for t in members)
        step = min(runstate.steps_done(Path(t.run_dir)) for t in members)
        parts.append(f"{prefix}/{seeds} at {step:,}/{members[0].steps:,} steps")
    return f"sweep {name}: {done}/{todo} ended; running {'; '.join(parts) or 'nothing'}"


class _Tracker:
    """Run statuses, the manifest and the progress display, updated from executor callbacks.

    On a terminal the display is a tqdm bar; otherwise (a log, CI, nohup, a cluster job), where a
    redrawn bar would be noise or nothing, it is one flushed stderr line per run that ends, and
    every `heartbeat_s` a line saying how far the running runs are.
    """

    def __init__(self, name: str, out: Path, tasks: list[RunTask], header: dict[str, Any],
                 todo: int, bar: bool, heartbeat_s: float = HEARTBEAT_S) -> None:
        self.name, self.out, self.tasks, self.header = name, out, tasks, header
        self.by_id = {task.run_id: task for task in tasks}
        self.outcomes: dict[str, RunOutcome] = {}
        self.statuses: dict[str, str] = {}
        self.lock = threading.Lock()
        self.todo, self.done, self.lines = todo, 0, not bar
        self.bar = tqdm(total=todo, disable=not (bar and todo > 0), unit="run", desc=f"sweep {name}",
                        dynamic_ncols=True)
        self.stopped = threading.Event()
        self.beater: threading.Thread | None = None
        if self.lines and todo > 0:
            self.beater = threading.Thread(target=self._beat, args=(heartbeat_s,), daemon=True)
            self.beater.start()

    def _beat(self, every: float) -> None:
        while not self.stopped.wait(every):
            with self.lock:
                running = [self.by_id[rid] for rid, status in self.statuses.items() if status == RUNNING]
                done = self.done
            if running:
                print(heartbeat_line(self.name, running, done, self.todo), file=sys.stderr, flush=True)

    def set(self, run_id: str, status: str, outcome: RunOutcome | None = None) -> None:
        with self.lock:
            self.statuses[run_id] = status
            if outcome is not None:
                self.outcomes[run_id] = outcome
            self.write_manifest()

    def started(self, task: RunTask) -> None:
        self.set(task.run_id, RUNNING)
        self._postfix()

    def finished(self, outcome: RunOutcome) -> None:
        self.set(outcome.run_id, outcome.status, outcome)
        with self.lock:
            self.done += 1
            self.bar.update(1)
            if self.lines:
                line = run_line(self.name, self.by_id[outcome.run_id], outcome, self.done, self.todo)
                print(line, file=sys.stderr, flush=True)
        self._postfix()

    def _postfix(self) -> None:
        with self.lock:
            counts = Counter(self.statuses.values())
            self.bar.set_postfix(running=counts[RUNNING], failed=counts[FAILED], refresh=True)

    def write_manifest(self) -> None:
        runs: list[dict[str, Any]] = []
        for task in self.tasks:
            outcome = self.outcomes.get(task.run_id)
            runs.append({
                "id": task.run_id, "dir": str(Path(task.run_dir).relative_to(self.out)),
                "algo": task.algo, "method": task.method, "variant": task.variant, "env": task.env,
                "seed": task.seed, "config_hash": task.config_hash,
                "status": self.statuses.get(task.run_id, PENDING),
                "error": outcome.error if outcome else None,
                "wall_s": _round(outcome.wall_s if outcome else None),
                "cpu_s": _round(outcome.cpu_s if outcome else None),
            })
        data = {**self.header, "updated": _now(),
                "counts": dict(Counter(r["status"] for r in runs)),
                "cpu_s_total": _round(sum(r["cpu_s"] or 0.0 for r in runs)), "runs": runs}
        atomic_write(self.out / MANIFEST, json.dumps(data, indent=2) + "\n")

    def close(self) -> None:
        """Stop the heartbeat and wait for it, so no beat follows the sweep's last line."""
        self.stopped.set()
        if self.beater is not None:
            self.beater.join()
        self.bar.close()

    def mark_interrupted(self) -> None:
        """Runs still `running` when the sweep stops early (Ctrl-C) were cut short."""
        with self.lock:
            cut = [rid for rid, status in self.statuses.items() if status == RUNNING]
            if cut:
                self.statuses.update({rid: INTERRUPTED for rid in cut})
                self.write_manifest()


def run_sweep(ref: str, *, budget: str = "full", workers: int = 2, executor: str = "local",
              address: str | None = None, out: str | Path | None = None,
              progress: bool | None = None, population: bool = True,
              only: Sequence[str] = (), reuse: Sequence[str | Path] = ()) -> SweepResult:
    """Run every incomplete run of spec `ref`; returns the final status of each run.

    `only`: shell-style patterns over run ids (`mpe-simple_spread_v3/qmix/no_*/s*`); where given,
    this invocation trains the matching runs alone, so a long study can be run part by part, or
    split across machines, without a spec of its own (the runs keep the full spec's config hash).

    With `population` (the default), incomplete runs that differ only in seed train together as
    one population per worker process; off, each run has a process of its own. Either way each
    run keeps its own directory, outcome and resume point.

    `reuse`: other sweep directories whose complete runs of the same id and config hash are
    copied in (result files only, `runstate.RESULT_FILES`) and count as done, relabelled as this
    experiment's with `trained_by` naming the one that trained them.

    `progress` picks how the sweep shows progress on stderr: True a tqdm bar, False one line per
    run that ends (`run_line`), None (the default) the bar when stderr is a terminal, else lines.
    """
    if budget not in BUDGETS:
        raise FactorizeError(f"budget: {budget!r} is not one of {', '.join(BUDGETS)}")
    spec = load_spec(ref)
    runner = make_executor(executor, workers, address)
    shown = Path(out) if out is not None else Path("results") / spec.name
    out_dir = shown.absolute()  # run directories must mean the same on every Ray node
    tasks = plan_runs(spec, budget, out_dir)
    selected = select_runs(tasks, only, spec.name)
    reused = reusable(selected, reuse)  # like training, reuse keeps to the runs `only` picks
    threads = 1 if executor == "ray" else max(1, usable_cores() // workers)
    for task in tasks:
        task.torch_threads = threads
        task.meta = {"executor": executor, "workers": workers}
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise FactorizeError(f"out: cannot create {out_dir}: {exc.strerror}") from None

    with _exclusive(out_dir):
        atomic_write(out_dir / SPEC_COPY, yaml.safe_dump(spec.raw, sort_keys=False))
        for task in selected:
            if (source := reused.get(task.run_id)) is not None:
                runstate.copy_results(source, Path(task.run_dir))
        complete = {t.run_id for t in tasks if is_complete(t)}
        todo = [t for t in selected if t.run_id not in complete]
        header = {"experiment": spec.name, "description": spec.description, "spec": spec.source,
                  "budget": budget, "executor": executor, "workers": workers, "address": address,
                  "only": list(only), "started": _now()}
        show = sys.stderr.isatty() if progress is None else progress
        tracker = _Tracker(spec.name, out_dir, tasks, header, len(todo), show)
        earlier = _earlier_cpu(out_dir / MANIFEST)
        for task in tasks:
            if task.run_id in complete:
                runstate.adopt(Path(task.run_dir), spec.name)
                outcome = read_outcome(task)
                outcome.cpu_s = earlier.get((task.run_id, task.config_hash))
                tracker.statuses[task.run_id] = outcome.status
                tracker.outcomes[task.run_id] = outcome
        tracker.write_manifest()
        try:
            if todo:
                with raise_on_sigterm():  # the executor hands SIGTERM on to its workers
                    runner.run(group_runs(todo, population), tracker)
        finally:
            tracker.close()
            tracker.mark_interrupted()
    chosen = {t.run_id for t in selected}
    return SweepResult(name=spec.name, out=shown, total=len(selected), skipped=len(complete & chosen),
                       statuses={rid: s for rid, s in tracker.statuses.items() if rid in chosen},
                       planned=len(tasks))


def select_runs(tasks: list[RunTask], only: Sequence[str], name: str) -> list[RunTask]:
    """The planned runs whose id matches one of `only`'s patterns (all of them without any); a
    pattern that matches nothing is a mistake worth an error, not a sweep that trains nothing."""
    if not only:
        return tasks
    chosen = [t for t in tasks if any(fnmatch.fnmatchcase(t.run_id, p) for p in only)]
    for pattern in only:
        if not any(fnmatch.fnmatchcase(t.run_id, pattern) for t in chosen):
            example = tasks[0].run_id if tasks else "env/algo/variant/s0"
            raise FactorizeError(f"only: {pattern!r} matches none of the {len(tasks)} runs of {name}; "
                                 f"run ids look like {example}")
    return chosen


def reusable(tasks: list[RunTask], sources: Sequence[str | Path]) -> dict[str, Path]:
    """Incomplete runs that another sweep directory holds complete, at the same run id and under
    the same config hash (a pilot's full QMIX is a study's QMIX row): run id -> its directory
    there. The first source that has a run wins. A source that is not a directory is an error."""
    roots = [Path(source) for source in sources]
    for root in roots:
        if not root.is_dir():
            raise FactorizeError(f"reuse: {root} is not a directory (give another sweep's --out, "
                                 "e.g. docs/results/pilot/runs)")
    found: dict[str, Path] = {}
    for task in tasks:
        if is_complete(task):
            continue
        for root in roots:
            if runstate.completed_hash(root / task.run_id) == task.config_hash:
                found[task.run_id] = root / task.run_id
                break
    return found


def _earlier_cpu(manifest: Path) -> dict[tuple[str, str], float]:
    """CPU seconds of runs completed by earlier invocations, so the manifest's total stays whole."""
    try:
        runs = json.loads(manifest.read_text())["runs"]
        return {(r["id"], r["config_hash"]): float(r["cpu_s"]) for r in runs if r.get("cpu_s") is not None}
    except (OSError, ValueError, KeyError, TypeError):
        return {}


def format_result(result: SweepResult) -> str:
    """The one line `factorize sweep` prints."""
    name = result.name
    if result.planned is not None and result.planned != result.total:
        name = f"{name} (--only: {result.total} of its {result.planned} runs)"
    if result.skipped == result.total:
        return f"sweep {name}: all {result.total} runs already complete in {result.out}; nothing to do"
    counts = result.counts()
    parts = [f"{n} {status}" for status, n in sorted(counts.items())]
    return (f"sweep {name}: {result.total} runs ({', '.join(parts)}; {result.skipped} were already "
            f"complete) in {result.out}")
