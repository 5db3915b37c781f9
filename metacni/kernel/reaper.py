"""Deferred link deletion: detach synchronously, destroy in the background (daemon only).

Deleting a veth makes the kernel wait for RCU readers (synchronize_net), most of a DEL's
time (figures: bench/README.md). A DEL does not need the pair to be gone, only to be cut
off: the caller first sets the host end down, releases it from its bridge and marks it with
the alias :data:`MARK` and the link group :data:`GROUP` (one request, :func:`detach`), then
hands the deletion to the reaper, a single background thread. It deletes the whole group in
one RTM_DELLINK per netns, so what queued up during one deletion goes in one kernel wait.
ENODEV (gone with its netns) is success.

- Only a long-lived process enables it (the daemon: :func:`enable` at start, :func:`disable`
  draining at graceful shutdown). Elsewhere :func:`current` is None and callers delete
  synchronously.
- A link name pending deletion must not be re-created before it is gone: :func:`wait_for`.
- A crash between the DEL answer and the deletion leaks a detached, marked link; :func:`sweep`
  (run by :func:`enable`, the daemon's GC and the bridge plugin's CNI GC) deletes every link
  carrying the mark.
- Idle is observable: :func:`status` (the daemon's status reply carries it) and
  :func:`wait_idle`, so a caller that needs the links gone (a test's final snapshot, an ADD
  reusing a name) waits on the reaper's own condition, never on a sleep.
- Test hook: ``METACNI_REAPER_HOLD=1`` in the environment starts the reaper held (nothing
  is deleted until :meth:`Reaper.release`), so tests can observe the pending state without timing.
"""

from __future__ import annotations

import collections
import os
import threading
from collections.abc import Callable
from logging import getLogger

from metacni.netlink import rtnl as nl
from metacni.netlink.rtnl import ENODEV, NetlinkError, Rtnl, is_errno

from .netns import current_netns_path

log = getLogger(__name__)
MARK = "metacni:reap"  # IFLA_IFALIAS of a detached link awaiting deletion
GROUP = 0x6D635250  # IFLA_GROUP of the same links ("mcRP"): RTM_DELLINK deletes a group at once
HOLD_ENV = "METACNI_REAPER_HOLD"
WAIT_LIMIT = 30.0  # an ADD waiting on a stuck reaper goes on (and fails with EEXIST) after this


def detach_request(name: str) -> nl.Request:
    """Down, no master, marked: the host end stops carrying traffic at once."""
    return nl.newlink(nl.LinkSpec(name=name, up=False, master=0, alias=MARK, group=GROUP), create=False)


def detach(ipr: Rtnl, name: str) -> bool:
    """Cut link ``name`` off (see :func:`detach_request`); False when it does not exist."""
    try:
        ipr.request(detach_request(name), f"detach link {name}")
    except NetlinkError as exc:
        if is_errno(exc, ENODEV):
            return False
        raise
    return True


class Reaper:
    """One worker thread deleting detached links on sockets handed over by the callers."""

    def __init__(self, *, hold: bool = False) -> None:
        self._cond = threading.Condition()
        self._queue: collections.deque[tuple[str, Rtnl, int]] = collections.deque()
        self._pending: collections.Counter[str] = collections.Counter()
        self._held = hold
        self._stopping = False
        self.deleted = 0  # submitted names done with
        self.requests = 0  # group deletions sent
        self.failed = 0  # names whose deletion failed even one by one (left for the GC sweep)
        self.waiting = 0  # callers blocked in wait_for/wait_idle (tests observe it)
        self._thread = threading.Thread(target=self._loop, name="link-reaper", daemon=True)
        self._thread.start()

    def submit(self, name: str) -> None:
        """Delete detached link ``name`` later, in the calling thread's current netns (a socket
        opened now keeps it)."""
        netns_id = current_netns_path().stat().st_ino
        sock = Rtnl()
        with self._cond:
            self._queue.append((name, sock, netns_id))
            self._pending[name] += 1
            self._cond.notify_all()

    def pending(self, name: str) -> bool:
        with self._cond:
            return self._pending[name] > 0

    def wait_for(self, name: str, timeout: float | None = None) -> bool:
        """Block until no deletion of ``name`` is pending; False on timeout."""
        return self._wait(lambda: self._pending[name] <= 0, timeout)

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Block until nothing is pending; False on timeout."""
        return self._wait(lambda: not self._queue and not +self._pending, timeout)

    def _wait(self, done: Callable[[], bool], timeout: float | None) -> bool:
        with self._cond:
            if done():
                return True
            self.waiting += 1
            self._cond.notify_all()
            try:
                return self._cond.wait_for(done, timeout)
            finally:
                self.waiting -= 1

    def state(self) -> dict[str, int | bool]:
        """Snapshot: ``idle`` (nothing queued or being deleted), ``pending`` names, ``deleted``
        names and ``requests`` sent so far, ``held``."""
        with self._cond:
            pending = sum(self._pending.values())
            return {"idle": not self._queue and pending <= 0, "pending": pending, "deleted": self.deleted,
                    "requests": self.requests, "failed": self.failed, "held": self._held}

    def wait_waiters(self, count: int, timeout: float | None = None) -> bool:
        """Block until ``count`` callers wait on a pending deletion (tests: no sleeps)."""
        with self._cond:
            return self._cond.wait_for(lambda: self.waiting >= count, timeout)

    def hold(self) -> None:
        with self._cond:
            self._held = True

    def release(self) -> None:
        with self._cond:
            self._held = False
            self._cond.notify_all()

    def stop(self, timeout: float | None = None) -> bool:
        """Delete what is queued (releasing a hold), then end the thread; False on timeout."""
        with self._cond:
            self._stopping = True
            self._held = False
            self._cond.notify_all()
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def _loop(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: (self._queue and not self._held) or (self._stopping and not self._queue))
                if not self._queue:
                    return
                jobs = list(self._queue)
                self._queue.clear()
            by_netns: dict[int, list[tuple[str, Rtnl, int]]] = {}
            for job in jobs:
                by_netns.setdefault(job[2], []).append(job)
            for group in by_netns.values():
                failed = 0
                try:
                    self.requests += 1
                    failed = _delete_group(group[0][1], [name for name, _, _ in group])
                finally:
                    for _, sock, _ in group:
                        sock.close()
                    with self._cond:
                        for name, _, _ in group:
                            self._pending[name] -= 1
                            if self._pending[name] <= 0:
                                del self._pending[name]
                        self.deleted += len(group)
                        self.failed += failed
                        self._cond.notify_all()


def _delete_group(sock: Rtnl, names: list[str]) -> int:
    """Every detached link in the socket's netns, in one request (and one kernel wait); if
    that fails, each of ``names`` on its own, so one bad link does not leave the others.
    Returns how many could not be deleted (logged; the next GC sweep retries them)."""
    try:
        sock.request(nl.delgroup(GROUP), f"delete detached links {', '.join(names)}")
        return 0
    except NetlinkError as exc:
        if is_errno(exc, ENODEV):  # gone with their netns already
            return 0
        log.warning("reaper: deleting %s as a group failed: %s; trying one by one", names, exc)
    except Exception:
        log.exception("reaper: deleting %s as a group failed; trying one by one", names)
    failed = 0
    for name in names:  # still pending, so no new link can have taken the name (wait_for)
        try:
            sock.request(nl.dellink(name=name), f"delete detached link {name}")
        except NetlinkError as exc:
            if not is_errno(exc, ENODEV):
                failed += 1
                log.warning("reaper: deleting %s failed: %s (the next GC sweep retries)", name, exc)
        except Exception:
            failed += 1
            log.exception("reaper: deleting %s failed (the next GC sweep retries)", name)
    return failed


_lock = threading.Lock()
_reaper: Reaper | None = None


def current() -> Reaper | None:
    """The process's reaper when enabled (the daemon), else None: delete synchronously."""
    return _reaper


def enable(*, hold: bool | None = None) -> Reaper:
    """Start the process-wide reaper (idempotent) after sweeping links a crashed predecessor
    left marked in the calling thread's netns. ``hold`` (tests; default: ``$METACNI_REAPER_HOLD``)
    starts it held: nothing is deleted, and nothing swept, until released."""
    global _reaper
    with _lock:
        if _reaper is None:
            held = os.environ.get(HOLD_ENV) == "1" if hold is None else hold
            if not held:
                try:
                    with Rtnl() as ipr:
                        sweep(ipr)
                except OSError:
                    log.exception("reaper: start-up sweep failed")
            _reaper = Reaper(hold=held)
        return _reaper


def disable(timeout: float | None = 10.0) -> bool:
    """Drain and stop the reaper (graceful shutdown); later DELs delete synchronously."""
    global _reaper
    with _lock:
        reaper, _reaper = _reaper, None
    return reaper.stop(timeout) if reaper is not None else True


def wait_for(name: str, timeout: float | None = WAIT_LIMIT) -> bool:
    """Block until a pending deletion of ``name`` is done (no-op without a reaper)."""
    reaper = _reaper
    return reaper.wait_for(name, timeout) if reaper is not None else True


def wait_idle(timeout: float | None = WAIT_LIMIT) -> bool:
    """Block until every pending deletion is done (no-op without a reaper)."""
    reaper = _reaper
    return reaper.wait_idle(timeout) if reaper is not None else True


def status() -> dict[str, int | bool]:
    """The process's reaper state (:meth:`Reaper.state`) plus ``enabled``; without a reaper
    deletions are synchronous, so it is always idle."""
    reaper = _reaper
    if reaper is None:
        return {"enabled": False, "idle": True, "pending": 0, "deleted": 0, "requests": 0, "failed": 0, "held": False}
    return {"enabled": True, **reaper.state()}


def sweep(ipr: Rtnl) -> list[str]:
    """Delete every detached link in the socket's netns (marked, see :func:`detach`) that this
    process's reaper is not about to delete; returns their names."""
    reaper = _reaper
    found = [link for link in map(nl.parse_link, ipr.dump(nl.dumplinks(), "dump links"))
             if link.alias == MARK and not (reaper is not None and reaper.pending(link.name))]
    if not found:
        return []
    try:
        ipr.request(nl.delgroup(GROUP), "delete detached links")
    except NetlinkError as exc:
        if not is_errno(exc, ENODEV):
            raise
    for link in found:  # marked without the group (should not happen): one by one
        try:
            ipr.request(nl.dellink(index=link.index), f"delete link {link.name}")
        except NetlinkError as exc:
            if not is_errno(exc, ENODEV):
                raise
    names = [link.name for link in found]
    log.info("reaped links left detached by an earlier process", extra={"links": names})
    return names
