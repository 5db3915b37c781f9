"""Cross-process serialisation of firewall read-modify-write cycles."""

from __future__ import annotations

import _thread  # not threading: locks are all we need, and its import costs every standalone CNI call
import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager

_thread_locks: dict[str, _thread.RLock] = {}
_guard = _thread.allocate_lock()


@contextmanager
def file_lock(path: str) -> Iterator[None]:
    """flock(LOCK_EX) on ``path`` plus a per-path thread lock (flock alone is per open file)."""
    with _guard:
        tlock = _thread_locks.setdefault(path, _thread.RLock())
    with tlock:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)
