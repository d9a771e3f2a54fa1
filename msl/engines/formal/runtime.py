"""Process settings: numpy bound computations fast on a small shared machine, hard deadlines.

* BLAS single-threaded: the matrices are small, and OpenBLAS threads that spin-wait for a core
  another process holds are 10-20 times slower than one thread.
* glibc ``malloc`` keeps freed blocks instead of unmapping them: the bound computations create
  and drop many arrays of a few megabytes, and with the default dynamic mmap threshold each one
  costs fresh page faults (measured: 5x slower elementwise numpy code).
* A hard deadline (:func:`run_bounded`): the work runs in a forked child that is killed when
  the time is up, so an answer comes on time whatever the child is busy with.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import pickle
import select
import signal
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

T = TypeVar("T")

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


def process_age() -> float:
    """Seconds since this process started, as a harness timing it from outside sees them
    (interpreter start-up and imports included); 0.0 where the system does not say."""
    try:
        with open("/proc/self/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        start_ticks = int(fields[19])  # field 22 of proc(5), counted after the command name
        with open("/proc/uptime") as fh:
            uptime = float(fh.read().split()[0])
        return max(0.0, uptime - start_ticks / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError):
        return 0.0


@dataclass(frozen=True)
class Bounded(Generic[T]):
    """What :func:`run_bounded` got: the value (``None`` when the work was stopped), whether
    the hard limit stopped it, and the peak resident memory of the work in bytes (when known)."""

    value: T | None
    stopped: bool
    peak_rss_bytes: int | None


def run_bounded(work: Callable[[], T], seconds: float) -> Bounded[T]:
    """Run ``work`` in a forked child and stop it (SIGKILL) ``seconds`` from now if it has not
    answered: a hard deadline that no long numpy call, LP or z3 query can overrun, since a
    thread or signal handler in the same process waits for those to return. The child's value
    (or exception, re-raised here) comes back pickled through a pipe; the child's peak memory
    comes from ``wait4``. Without ``fork`` (not POSIX) the work runs here, unbounded."""
    if not hasattr(os, "fork"):
        return Bounded(work(), False, None)
    end = time.monotonic() + max(0.0, seconds)
    read_fd, write_fd = os.pipe()
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:  # the child: never returns
        code = 0
        try:
            os.close(read_fd)
            try:
                payload: tuple[str, Any] = ("ok", work())
            except BaseException as exc:  # noqa: BLE001 - every outcome goes back to the parent
                payload = ("raise", exc)
            try:
                data = pickle.dumps(payload)
            except Exception as exc:  # an unpicklable value: say so rather than hang
                data = pickle.dumps(("raise", RuntimeError(f"the bounded work's result cannot be sent back: {exc}")))
            with os.fdopen(write_fd, "wb") as fh:
                fh.write(data)
        except BaseException:  # noqa: BLE001
            code = 1
        finally:
            os._exit(code)
    os.close(write_fd)
    chunks: list[bytes] = []
    stopped = False
    try:
        while True:
            left = end - time.monotonic()
            if left <= 0:
                stopped = True
                break
            ready, _, _ = select.select([read_fd], [], [], left)
            if not ready:
                continue
            chunk = os.read(read_fd, 1 << 20)
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(read_fd)
        if stopped:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        _, status, usage = os.wait4(pid, 0)
    peak = int(usage.ru_maxrss) * (1 if sys.platform == "darwin" else 1024)
    if stopped:
        return Bounded(None, True, peak)
    if not chunks:
        raise RuntimeError(f"the bounded work ended without an answer (wait status {status})")
    kind, value = pickle.loads(b"".join(chunks))
    if kind == "raise":
        raise value
    return Bounded(value, False, peak)
