"""Where runs execute: a local pool of worker processes, or tasks on a Ray cluster.

Both give every unit of work (one run, or the runs of one population) a fresh process (a
subprocess; a Ray worker with `max_calls=1`) and report progress per run through the same two
callbacks. Neither decides what a run's outcome is: that is read
back from its directory (`worker.read_outcome`), so both executors agree by construction.
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict
from pathlib import Path
from typing import Protocol

from factorize.errors import FactorizeError
from factorize.experiments.plan import RunTask
from factorize.experiments.rundir import RunDir
from factorize.experiments.worker import INCOMPLETE, RunOutcome, execute, read_outcome, record_crash
from factorize.preemption import PREEMPTED_EXIT

WORKER_LOG = "worker.log"
STOP_GRACE_S = 60.0
"""How long a stopping sweep waits for its workers to checkpoint before killing them."""
RAY_MISSING = "executor: ray is not installed; install the extra with: pip install 'factorize[ray]'"


class Events(Protocol):
    def started(self, task: RunTask) -> None: ...

    def finished(self, outcome: RunOutcome) -> None: ...


def _exit_text(code: int) -> str:
    if code == PREEMPTED_EXIT:
        return "stopped by SIGTERM after writing a checkpoint (the next sweep resumes it)"
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exited with status {code}"


def _feed_and_wait(proc: subprocess.Popen[bytes], data: bytes) -> float | None:
    """Send the task on stdin, wait, and return the child's CPU seconds (POSIX; None elsewhere)."""
    if not hasattr(os, "wait4"):
        proc.communicate(data)
        return None
    assert proc.stdin is not None
    try:
        proc.stdin.write(data)
        proc.stdin.close()
    except BrokenPipeError:  # the child died before reading its task; its exit status says why
        pass
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return usage.ru_utime + usage.ru_stime


class LocalExecutor:
    """`workers` runs at a time, each `python -m factorize.experiments.worker` in its own process.

    Threads only wait on the subprocesses; the training happens in the children. A child's
    output goes to `worker.log` in its run directory.
    """

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self._children: set[subprocess.Popen[bytes]] = set()
        self._lock = threading.Lock()
        self._stopping = threading.Event()

    def _run_group(self, group: list[RunTask], events: Events) -> None:
        for task in group:
            events.started(task)
            Path(task.run_dir).mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        cmd = [sys.executable, "-m", "factorize.experiments.worker", "--parent", str(os.getpid()),
               "--run-dir", group[0].run_dir]
        # a population's output goes to its first run's log; the others' logs say where
        log_dir = Path(group[0].run_dir)
        for task in group[1:]:
            with open(Path(task.run_dir) / WORKER_LOG, "a") as other:
                other.write(f"trained in a population with {group[0].run_id}: see {log_dir / WORKER_LOG}\n")
        with open(log_dir / WORKER_LOG, "ab") as log:
            proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=log, stderr=subprocess.STDOUT)
            with self._lock:
                self._children.add(proc)
            try:
                cpu_s = _feed_and_wait(proc, json.dumps([asdict(t) for t in group]).encode())
            finally:
                with self._lock:
                    self._children.discard(proc)
        if self._stopping.is_set():
            return
        wall = time.perf_counter() - t0
        outcomes = [read_outcome(task, wall) for task in group]
        shares = split_cpu(cpu_s, [Path(t.run_dir) for t in group])
        for task, outcome, share in zip(group, outcomes, shares):
            if outcome.status == INCOMPLETE:
                outcome = record_crash(task, f"worker process {_exit_text(proc.returncode)} before finishing; "
                                             f"see {log_dir / WORKER_LOG}")
            outcome.cpu_s = share
            events.finished(outcome)

    def run(self, groups: list[list[RunTask]], events: Events) -> None:
        pool = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="sweep")
        try:
            futures = [pool.submit(self._run_group, group, events) for group in groups]
            for future in as_completed(futures):
                future.result()
        except BaseException:
            self._stopping.set()
            pool.shutdown(wait=False, cancel_futures=True)
            self._stop_children()
            raise
        finally:
            pool.shutdown(wait=True)


    def _stop_children(self) -> None:
        """SIGTERM to every worker (each checkpoints its runs and exits), SIGKILL to any still
        running after `STOP_GRACE_S`. A worker leaves `_children` once it has been reaped."""
        with self._lock:
            children = list(self._children)
        for proc in children:
            proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_S
        while time.monotonic() < deadline:
            with self._lock:
                if not self._children:
                    return
            time.sleep(0.05)
        with self._lock:
            for proc in self._children:
                proc.kill()


def split_cpu(total: float | None, run_dirs: list[Path]) -> list[float | None]:
    """A process's CPU seconds shared among the runs it trained, in proportion to each run's own
    (`summary.json` time.cpu_s, which excludes the process's start); evenly where one is missing.
    The shares add up to the total, so a sweep's summed CPU time stays the processes' own."""
    if total is None:
        return [None] * len(run_dirs)
    own = []
    for run_dir in run_dirs:
        value = ((RunDir(run_dir).summary() or {}).get("time") or {}).get("cpu_s")
        if not isinstance(value, (int, float)) or value <= 0:
            return [total / len(run_dirs)] * len(run_dirs)
        own.append(float(value))
    return [total * v / sum(own) for v in own]


class RayExecutor:
    """Each unit (a run or a population) a Ray task requesting `task.torch_threads` CPUs, on a fresh worker process.

    With `address` it joins an existing cluster (every node must see the output directory,
    e.g. a shared filesystem, and have factorize installed); without, it starts a local Ray
    with `workers` CPUs and stops it at the end.
    """

    def __init__(self, workers: int, address: str | None = None) -> None:
        self.workers = workers
        self.address = address

    def run(self, groups: list[list[RunTask]], events: Events) -> None:
        try:
            import ray
        except ImportError:
            raise FactorizeError(RAY_MISSING) from None
        started_here = not ray.is_initialized()
        if started_here:
            if self.address:
                ray.init(address=self.address)
            else:
                ray.init(num_cpus=self.workers, include_dashboard=False)
        try:
            remote = ray.remote(max_calls=1)(execute)
            pending = {}
            for group in groups:
                pending[remote.options(num_cpus=max(1, group[0].torch_threads)).remote(group)] = group
                for task in group:
                    events.started(task)
            while pending:
                done, _ = ray.wait(list(pending), num_returns=1)
                group = pending.pop(done[0])
                try:
                    outcomes = ray.get(done[0])
                except ray.exceptions.RayError as exc:
                    why = f"ray task failed: {str(exc).strip().splitlines()[0]}"
                    outcomes = [record_crash(task, why) for task in group]
                for outcome in outcomes:
                    events.finished(outcome)
        finally:
            if started_here:
                ray.shutdown()


def make_executor(kind: str, workers: int, address: str | None) -> LocalExecutor | RayExecutor:
    if workers < 1:
        raise FactorizeError(f"workers: must be >= 1, got {workers}")
    if kind == "local":
        if address is not None:
            raise FactorizeError("address: only used with --executor ray")
        return LocalExecutor(workers)
    if kind == "ray":
        if importlib.util.find_spec("ray") is None:
            raise FactorizeError(RAY_MISSING)
        return RayExecutor(workers, address)
    raise FactorizeError(f"executor: {kind!r} is not one of local, ray")
