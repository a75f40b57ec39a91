"""Keep freed tensor memory in the process instead of handing it back to the kernel.

Why: a learner update allocates and frees the same few dozen activation buffers (hundreds of
KB each) every time. With its default thresholds glibc hands much of that memory back to the
kernel (`munmap`, heap trimming), so every update page-faults its buffers back in and zeroes
them again: 130-200 page faults per QMIX update on simple_spread. Raising the mmap and trim
thresholds keeps the memory in the process, which removes the faults (about 1 per update)
without changing a single number the learner computes. The time this saves is small, below the
noise of the shared machine it was measured on (docs/performance.md). Other allocators (jemalloc,
musl) and other systems are left as they are.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

# mallopt parameter numbers from glibc's <malloc.h>
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3

MMAP_THRESHOLD = 32 * 2**20
"""Blocks below this come from the heap: glibc's own upper limit for the setting."""
TRIM_THRESHOLD = 256 * 2**20
"""Free heap memory up to this stays in the process rather than being trimmed."""


def keep_freed_memory() -> bool:
    """Tune glibc's malloc for a training loop; returns whether the setting took effect."""
    if not sys.platform.startswith("linux"):
        return False
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))
