"""Cross-process serialisation of firewall read-modify-write cycles."""

from __future__ import annotations

import fcntl
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

_thread_locks: dict[Path, threading.RLock] = {}
_guard = threading.Lock()


@contextmanager
def file_lock(path: str | os.PathLike[str]) -> Iterator[None]:
    """flock(LOCK_EX) on ``path`` plus a per-path thread lock (flock alone is per open file)."""
    path = Path(path)
    with _guard:
        tlock = _thread_locks.setdefault(path, threading.RLock())
    with tlock:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)
