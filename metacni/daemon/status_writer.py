"""network-status written after the ADD has answered: one thread, the newest entries per pod,
retried until written or moot (docs/design/1506-network-status-after-the-answer.md).

A daemon ADD queues its pod's ``k8s.v1.cni.cncf.io/network-status`` here instead of waiting for
the API, so neither a slow nor an unreachable API server holds up a sandbox. Contracts:

- **Newest wins, per pod.** A write queued for a pod replaces the one still waiting for the same
  pod (a sandbox re-created, a dynamic attachment): writes of one pod happen in the order they
  were queued, and a stale list is never written after a newer one.
- **DEL cancels.** :meth:`StatusWriter.cancel` drops the waiting write of a container (its
  interfaces are gone). A write already on the wire finishes, as a synchronous one would have.
- **Retried, never lost to a transient error.** A failed write is tried again after a growing
  delay (``backoff`` doubling up to ``max_backoff``), for as long as it is still the pod's newest
  write, the container was not DELeted and ``still_wanted`` says the pod is the same (not
  deleted, not re-created under the same name). The patch also carries the pod's UID, so the
  API refuses it for a re-created pod.
- **Bounded.** At most ``max_pending`` pods wait; beyond that the oldest waiting write is
  dropped with an error log (a node runs far fewer pods).
- **Out of the calls' way.** CNI calls are what a pod waits for; a status write is not. A due
  write first waits for a moment without CNI calls in flight (``quiet``), for at most
  ``max_defer`` seconds, so its work never competes with a call's answer for the interpreter
  or the CPU (figures: bench/README.md).

Above the API it needs only a ``write(namespace, name, entries, uid)`` callable that raises on
failure and returns False when the pod is gone, so the tests drive it against the fake API.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)
JSON = dict[str, Any]
#: (namespace, name, entries, uid) -> True written, False the pod is gone; raises on failure
Write = Callable[[str, str, list[JSON], str], bool]
#: (namespace, name, uid) -> False when the pod is known to be deleted or re-created
StillWanted = Callable[[str, str, str], bool]


@dataclass
class StatusWrite:
    """One pod's network-status, as an ADD (or a dynamic attachment) left it."""

    namespace: str
    name: str
    uid: str
    container_id: str
    entries: list[JSON]
    write: Write
    attempts: int = 0
    seq: int = field(default=0, compare=False)
    due: float = field(default=0.0, compare=False)  # monotonic time of the next attempt

    @property
    def pod(self) -> tuple[str, str]:
        return (self.namespace, self.name)


class StatusWriter:
    """Writes queued network-status lists from one background thread (see the module docstring)."""

    def __init__(self, still_wanted: StillWanted | None = None, *, backoff: float = 0.2, max_backoff: float = 30.0,
                 max_pending: int = 4096, quiet: Callable[[float], object] | None = None, max_defer: float = 0.5,
                 on_change: Callable[[int], None] | None = None,
                 on_result: Callable[[str], None] | None = None) -> None:
        self.still_wanted = still_wanted
        self.quiet, self.max_defer = quiet, max_defer  # quiet(t): wait up to t s for no CNI call in flight
        self.backoff, self.max_backoff, self.max_pending = backoff, max_backoff, max_pending
        self.on_change = on_change  # the number of pods waiting, after every change
        self.on_result = on_result  # "ok", "gone", "retry", "dropped" per attempt
        self._cond = threading.Condition()
        self._newest: dict[tuple[str, str], StatusWrite] = {}  # pod -> its newest write (waiting or running)
        self._due: list[tuple[float, int, StatusWrite]] = []  # (when, seq, write), stale ones skipped
        self._seq = itertools.count(1)
        self._thread: threading.Thread | None = None
        self._stopping = False
        self._final = False  # stopping: no more retries

    # ------------------------------------------------------------------ callers
    def submit(self, write: StatusWrite) -> None:
        """Queue ``write``; it replaces the pod's waiting write, if any. Never blocks on the API."""
        with self._cond:
            write.seq = next(self._seq)
            if write.pod not in self._newest and len(self._newest) >= self.max_pending:
                self._drop_oldest()
            self._newest[write.pod] = write
            self._schedule(write, time.monotonic())
            self._start()
            self._changed()
            self._cond.notify_all()

    def cancel(self, container_id: str) -> bool:
        """Forget the write of ``container_id`` (its DEL is running): not tried (again); one already
        on the wire finishes. True if there was one."""
        with self._cond:
            for pod, write in list(self._newest.items()):
                if write.container_id == container_id:
                    del self._newest[pod]
                    self._changed()
                    self._cond.notify_all()
                    return True
        return False

    def pending(self) -> int:
        """Pods whose newest write is not written yet (waiting, retrying or on the wire)."""
        with self._cond:
            return len(self._newest)

    def flush(self, timeout: float) -> bool:
        """Wait until every queued write is written or dropped; False when ``timeout`` passed first."""
        with self._cond:
            return self._cond.wait_for(lambda: not self._newest, timeout)

    def stop(self, grace: float = 5.0) -> None:
        """Try each waiting write once more, at once (a retry not yet due too), for up to ``grace``
        seconds in all, then stop; a write that fails now is dropped (the next daemon's start-up
        repair finds it again)."""
        with self._cond:
            self._final = True
            self._due = [(0.0, seq, w) for _, seq, w in self._due]
            for _, _, w in self._due:
                w.due = 0.0
            heapq.heapify(self._due)
            self._cond.notify_all()
        if not self.flush(grace):
            log.warning("network-status of %d pod(s) not written before shutdown", self.pending())
        with self._cond:
            self._stopping = True
            thread, self._thread = self._thread, None
            self._cond.notify_all()
        if thread is not None:
            thread.join(grace)

    # ------------------------------------------------------------------ the writing thread
    def _start(self) -> None:
        if self._thread is None and not self._stopping:
            self._thread = threading.Thread(target=self._loop, name="metacni-network-status", daemon=True)
            self._thread.start()

    def _changed(self) -> None:
        if self.on_change is not None:
            self.on_change(len(self._newest))

    def _drop_oldest(self) -> None:
        pod, old = min(self._newest.items(), key=lambda item: item[1].seq)
        del self._newest[pod]
        log.error("more than %d pods wait for their network-status; dropping the write for pod %s/%s",
                  self.max_pending, *pod)
        self._count("dropped")

    def _schedule(self, write: StatusWrite, when: float) -> None:
        write.due = when
        heapq.heappush(self._due, (when, write.seq, write))

    def _current(self, write: StatusWrite) -> bool:
        return self._newest.get(write.pod) is write

    def _next(self) -> StatusWrite | None:
        """The next due write, waiting for one; None when stopping."""
        with self._cond:
            while not self._stopping:
                while self._due and not self._current(self._due[0][2]):
                    heapq.heappop(self._due)  # superseded or cancelled
                if self._due:
                    when = self._due[0][0]
                    wait = when - time.monotonic()
                    if wait <= 0:
                        return heapq.heappop(self._due)[2]
                    self._cond.wait(wait)
                else:
                    self._cond.wait()
            return None

    def _loop(self) -> None:
        while (write := self._next()) is not None:
            if self.quiet is not None and not self._final:
                self.quiet(max(0.0, write.due + self.max_defer - time.monotonic()))
                with self._cond:
                    if not self._current(write):  # superseded or cancelled meanwhile
                        continue
            outcome = self._attempt(write)
            with self._cond:
                if outcome == "retry" and self._current(write) and not self._final:
                    write.attempts += 1
                    delay = min(self.max_backoff, self.backoff * 2 ** (write.attempts - 1))
                    self._schedule(write, time.monotonic() + delay)
                elif self._current(write):
                    del self._newest[write.pod]
                    if outcome == "retry":  # stopping: not tried again here
                        log.warning("network-status of pod %s/%s dropped at shutdown (the next daemon writes it)",
                                    write.namespace, write.name)
                self._changed()
                self._cond.notify_all()

    def _attempt(self, write: StatusWrite) -> str:
        what = f"network-status of pod {write.namespace}/{write.name} (container {write.container_id})"
        try:
            written = write.write(write.namespace, write.name, write.entries, write.uid)
        except Exception as exc:
            details = getattr(exc, "details", "") or f"{type(exc).__name__}: {exc}"
            if self._wanted(write):
                log.warning("%s not written (attempt %d, retrying): %s", what, write.attempts + 1, details)
                return self._count("retry")
            log.info("%s not written: the pod was deleted or re-created (%s)", what, details)
            return self._count("gone")
        if not written:
            log.info("%s not written: the pod is gone", what)
            return self._count("gone")
        return self._count("ok")

    def _wanted(self, write: StatusWrite) -> bool:
        if self.still_wanted is None:
            return True
        try:
            return self.still_wanted(write.namespace, write.name, write.uid)
        except Exception:  # cannot tell: keep trying
            log.debug("still_wanted failed", exc_info=True)
            return True

    def _count(self, outcome: str) -> str:
        if self.on_result is not None:
            self.on_result(outcome)
        return outcome
