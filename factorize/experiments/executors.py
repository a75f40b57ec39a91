"""Where runs execute: a local pool of worker processes, or tasks on a Ray cluster.

Both give every run a fresh process (a subprocess; a Ray worker with `max_calls=1`) and report
progress through the same two callbacks. Neither decides what a run's outcome is: that is read
back from its directory (`worker.read_outcome`), so both executors agree by construction.
"""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import Protocol

from factorize.errors import FactorizeError
from factorize.experiments.plan import RunTask
from factorize.experiments.worker import INCOMPLETE, RunOutcome, execute, read_outcome, record_crash

WORKER_LOG = "worker.log"
RAY_MISSING = "executor: ray is not installed; install the extra with: pip install 'factorize[ray]'"


class Events(Protocol):
    def started(self, task: RunTask) -> None: ...

    def finished(self, outcome: RunOutcome) -> None: ...


def _exit_text(code: int) -> str:
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

    def _run_one(self, task: RunTask, events: Events) -> None:
        events.started(task)
        run_dir = Path(task.run_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        cmd = [sys.executable, "-m", "factorize.experiments.worker", "--parent", str(os.getpid()),
               "--run-dir", task.run_dir]
        with open(run_dir / WORKER_LOG, "ab") as log:
            proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=log, stderr=subprocess.STDOUT)
            with self._lock:
                self._children.add(proc)
            try:
                cpu_s = _feed_and_wait(proc, task.to_json().encode())
            finally:
                with self._lock:
                    self._children.discard(proc)
        if self._stopping.is_set():
            return
        outcome = read_outcome(task, time.perf_counter() - t0)
        if outcome.status == INCOMPLETE:
            outcome = record_crash(task, f"worker process {_exit_text(proc.returncode)} before finishing; "
                                         f"see {WORKER_LOG}")
        outcome.cpu_s = cpu_s
        events.finished(outcome)

    def run(self, tasks: list[RunTask], events: Events) -> None:
        pool = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="sweep")
        try:
            futures = [pool.submit(self._run_one, task, events) for task in tasks]
            for future in as_completed(futures):
                future.result()
        except BaseException:
            self._stopping.set()
            pool.shutdown(wait=False, cancel_futures=True)
            with self._lock:
                for proc in self._children:
                    proc.kill()
            raise
        finally:
            pool.shutdown(wait=True)


class RayExecutor:
    """Each run a Ray task requesting `task.torch_threads` CPUs, on a fresh worker process.

    With `address` it joins an existing cluster (every node must see the output directory,
    e.g. a shared filesystem, and have factorize installed); without, it starts a local Ray
    with `workers` CPUs and stops it at the end.
    """

    def __init__(self, workers: int, address: str | None = None) -> None:
        self.workers = workers
        self.address = address

    def run(self, tasks: list[RunTask], events: Events) -> None:
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
            for task in tasks:
                pending[remote.options(num_cpus=max(1, task.torch_threads)).remote(task)] = task
                events.started(task)
            while pending:
                done, _ = ray.wait(list(pending), num_returns=1)
                task = pending.pop(done[0])
                try:
                    outcome = ray.get(done[0])
                except ray.exceptions.RayError as exc:
                    outcome = record_crash(task, f"ray task failed: {str(exc).strip().splitlines()[0]}")
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
