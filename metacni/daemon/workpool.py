"""A bounded pool of worker threads, started on demand, for :mod:`metacni.daemon.httpserve`.

Contracts: at most ``size`` threads and ``queue_size`` waiting jobs (``submit`` says False
beyond); a thread is started only when a job waits and no worker is idle; a start that fails
(``RuntimeError: can't start new thread`` when the kernel refuses, or any other error of the
thread factory) is counted, logged, and retried by the next :meth:`grow` after a back-off,
while the job stays queued. Workers live until :meth:`drain`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)
Events = Callable[[str], None]


class WorkerPool:
    """At most ``size`` worker threads, started on demand; a failed start is retried later."""

    def __init__(self, size: int, queue_size: int, run: Callable[[Any], None],
                 thread_factory: Callable[..., threading.Thread], events: Events, name: str) -> None:
        self.name = name
        self.size = max(1, size)
        self.queue_size = max(1, queue_size)
        self._run = run
        self._factory = thread_factory
        self._events = events
        self._cond = threading.Condition()
        self._jobs: deque[Any] = deque()
        self._threads = 0
        self._idle = 0
        self._stopping = False
        self.retry_at = 0.0  # monotonic time of the next start attempt after a failure
        self._backoff = 0.0

    def submit(self, job: Any) -> bool:
        with self._cond:
            if len(self._jobs) >= self.queue_size:
                return False
            self._jobs.append(job)
            self._cond.notify()
        self.grow()
        return True

    def grow(self) -> None:
        """Start a worker when jobs wait and none is idle (called again by the I/O loop)."""
        with self._cond:
            if (not self._jobs or self._idle >= len(self._jobs) or self._threads >= self.size
                    or time.monotonic() < self.retry_at):
                return
            self._threads += 1
        try:
            self._factory(target=self._worker, name=f"{self.name}-worker", daemon=True).start()
        except Exception as exc:  # RuntimeError "can't start new thread", MemoryError, ...
            with self._cond:
                self._threads -= 1
                self._backoff = min(1.0, self._backoff * 2 or 0.05)
                self.retry_at = time.monotonic() + self._backoff
            self._events("thread_start_failed")
            log.warning("%s: could not start a worker thread, retrying in %.2fs: %s", self.name, self._backoff, exc)
        else:
            self._backoff = 0.0

    def retry_pending(self) -> bool:
        """True when a job waits for a worker that failed to start and may be retried."""
        with self._cond:
            return len(self._jobs) > self._idle and self._threads < self.size and self.retry_at > time.monotonic()

    def queued(self) -> int:
        with self._cond:
            return len(self._jobs)

    def _worker(self) -> None:
        while True:
            with self._cond:
                self._idle += 1
                self._cond.wait_for(lambda: self._jobs or self._stopping)
                self._idle -= 1
                if not self._jobs:
                    self._threads -= 1
                    self._cond.notify_all()
                    return
                job = self._jobs.popleft()
            try:
                self._run(job)
            except Exception:
                log.exception("worker failed")

    def drain(self) -> list[Any]:
        """Stop: jobs not started yet are returned (to be answered "unavailable")."""
        with self._cond:
            self._stopping = True
            jobs = list(self._jobs)
            self._jobs.clear()
            self._cond.notify_all()
            return jobs
