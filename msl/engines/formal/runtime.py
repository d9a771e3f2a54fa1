"""Process settings that make the numpy bound computations fast on a small shared machine.

* BLAS single-threaded: the matrices are small, and OpenBLAS threads that spin-wait for a core
  another process holds are 10-20 times slower than one thread.
* glibc ``malloc`` keeps freed blocks instead of unmapping them: the bound computations create
  and drop many arrays of a few megabytes, and with the default dynamic mmap threshold each one
  costs fresh page faults (measured: 5x slower elementwise numpy code).
"""

from __future__ import annotations

import ctypes
import ctypes.util
from collections.abc import Iterator
from contextlib import contextmanager

_M_TRIM_THRESHOLD = -1
_M_TOP_PAD = -2
_M_MMAP_THRESHOLD = -3
_tuned = False


def _tune_malloc() -> None:
    global _tuned
    if _tuned:
        return
    _tuned = True
    name = ctypes.util.find_library("c")
    if not name:
        return
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return  # not glibc: nothing to tune
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt(_M_MMAP_THRESHOLD, 32 * 1024 * 1024)
    mallopt(_M_TRIM_THRESHOLD, 256 * 1024 * 1024)
    mallopt(_M_TOP_PAD, 64 * 1024 * 1024)


@contextmanager
def fast_numpy() -> Iterator[None]:
    """Single-threaded BLAS for the duration, and the malloc settings above (kept)."""
    from threadpoolctl import threadpool_limits

    _tune_malloc()
    with threadpool_limits(limits=1):
        yield
