"""Giving the memory a finished job freed back to the system, so that a long-running worker stays its working size.

A score run or a training frees what it allocated, but glibc's allocator keeps the freed pages in its arenas (one per
thread that allocated: the pusher's, the HTTP server's, PyTorch's) for later use: a worker that once scored every
record stays at that run's peak for good (measured: 1.7 GB resident for a 0.6 GB working size, benchmarks/soak.py).
``malloc_trim`` hands the free pages back. Elsewhere (musl, macOS) there is nothing to call and nothing is done.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import logging
from collections.abc import Callable

import psutil

logger = logging.getLogger(__name__)


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    """glibc's ``malloc_trim``, or None where the C library has none."""
    name = ctypes.util.find_library("c")
    try:
        return ctypes.CDLL(name).malloc_trim if name else None
    except (OSError, AttributeError):
        return None


def return_freed_memory(after: str) -> int:
    """Hand the allocator's free pages back to the system after the job ``after``; the bytes of resident memory
    that went (0 where there is no ``malloc_trim``). Milliseconds; O(heap) pages looked at."""
    trim = _malloc_trim()
    if trim is None:
        return 0
    process = psutil.Process()
    before = process.memory_info().rss
    trim(0)
    returned = max(0, before - process.memory_info().rss)
    logger.debug("after %s: %.0f MB of freed memory returned to the system", after, returned / 2**20)
    return returned
