"""SIGTERM as a request to checkpoint and stop, not a kill.

Schedulers (Slurm, Kubernetes) and Ray send SIGTERM when they preempt a job. Training loops
run inside `checkpoint_on_sigterm()`; the handler only sets a flag, and the loop, at the end of
its current pass, writes a checkpoint of every run it holds and raises `Preempted`. So a preempted
run loses at most one pass of the loop, and `--resume` (or the next sweep) continues from there.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from types import FrameType

PREEMPTED_EXIT = 128 + signal.SIGTERM
"""The exit status of a process that stopped on SIGTERM after checkpointing (the shell's 143)."""

_requested = threading.Event()


class Preempted(Exception):
    """A training loop stopped on SIGTERM after checkpointing its runs."""

    def __init__(self, steps: list[int]) -> None:
        super().__init__(f"stopped by SIGTERM at step {', '.join(map(str, steps))}; checkpoint written")
        self.steps = steps


class Terminated(BaseException):
    """SIGTERM in a sweep's own process: raised in its main thread by `raise_on_sigterm`, so the
    executor stops waiting and hands the signal on to its workers (BaseException, so no
    `except Exception` on the way swallows it)."""


def _raise(signum: int, frame: FrameType | None) -> None:
    raise Terminated()


def raise_on_sigterm() -> AbstractContextManager[None]:
    """While inside (main thread only), SIGTERM raises `Terminated`: for a process that
    trains nothing itself and must pass the request on (a sweep)."""
    return _handling_sigterm(_raise)


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    _requested.set()


def requested() -> bool:
    """Whether SIGTERM has arrived since the loop started."""
    return _requested.is_set()


def checkpoint_on_sigterm() -> AbstractContextManager[None]:
    """While inside, SIGTERM sets the flag `requested()` reads instead of ending the process.

    Outside the main thread (where Python cannot install handlers) this does nothing, and
    SIGTERM keeps its usual effect.
    """
    return _handling_sigterm(_on_sigterm)


@contextmanager
def _handling_sigterm(handler: Callable[[int, FrameType | None], None]) -> Iterator[None]:
    """`handler` for SIGTERM while inside (main thread only), the previous one restored after."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
        _requested.clear()
