"""Kubernetes Events for pods, as Multus records them: ``kubectl describe pod`` shows them.

- ``Normal AddedInterface`` per attachment after a successful ADD, in Multus' wording:
  ``Add eth0 [10.88.0.5/24] from default/net1`` (Go's ``%v`` of the IP list).
- ``Warning NoNetworkFound`` when a NAD the pod names does not exist (Multus' reason), and
  ``Warning ErrorAddingInterface`` for any other failed ADD; the message names the network
  and the reason (the CNI error's text).

Events are core/v1 ``events`` (what client-go's recorder in Multus writes), source component
``metacni``, created with the ``kubernetes`` dynamic client (:meth:`ApiKubeView.call`).

They never block or fail an ADD: :meth:`Recorder.emit` only queues (a full queue drops); one
background thread posts them with a short timeout and logs and drops any failure (a 500, a
timeout). They are rate-limited per pod and reason (a token bucket: ``burst`` events, then one
per ``refill`` seconds, like client-go's spam filter), so a crash-looping sandbox cannot
flood the API.

The posting thread starts with the first event and inherits the network namespace of the
thread that emits it (the meta plugin reports after its ADD, outside any pod namespace). In the
daemon it first waits, for at most ``MAX_DEFER`` seconds after the event was queued, for a
moment without CNI calls in flight (the ``quiet`` given to :func:`install`), as the daemon's
network-status writer does: a pod waits for its call's answer, not for its events.

Only a long-lived process queues them: the node daemon calls :func:`install` at start (with
its own credentials). A standalone CNI call (no daemon) exits right after its ADD, before the
background thread could post, so it installs no recorder; its Warnings are handed to a
detached poster instead (:mod:`.event_handoff`).
"""

from __future__ import annotations

import dataclasses
import logging
import queue
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from metacni.spec.errors import CNIError

from .kube import ApiKubeView, KubeSettings, _shared

if TYPE_CHECKING:
    from .kube_dynamic import DynamicApi

log = logging.getLogger(__name__)

COMPONENT = "metacni"
ADDED_INTERFACE = "AddedInterface"
NO_NETWORK_FOUND = "NoNetworkFound"
ADD_FAILED = "ErrorAddingInterface"
NORMAL, WARNING = "Normal", "Warning"
MAX_MESSAGE = 1024  # the API refuses longer event notes
QUEUE_SIZE = 1000
POST_TIMEOUT = 5.0
MAX_DEFER = 0.5  # longest an event waits for no CNI call in flight
Quiet = Callable[[float], object]  # quiet(t): wait up to t seconds for no CNI call in flight


@dataclass
class Event:
    namespace: str
    pod: str
    uid: str
    type: str
    reason: str
    message: str
    at: datetime = field(default_factory=lambda: datetime.now(UTC))
    queued: float = field(default_factory=time.monotonic, compare=False)

    def body(self, host: str) -> dict[str, Any]:
        stamp = self.at.strftime("%Y-%m-%dT%H:%M:%SZ")
        involved = {"kind": "Pod", "apiVersion": "v1", "namespace": self.namespace, "name": self.pod}
        if self.uid:
            involved["uid"] = self.uid
        return {
            "apiVersion": "v1", "kind": "Event",
            # client-go names events "<object>.<hex nanoseconds>"
            "metadata": {"name": f"{self.pod}.{time.time_ns():x}", "namespace": self.namespace},
            "involvedObject": involved,
            "reason": self.reason, "message": self.message[:MAX_MESSAGE], "type": self.type,
            "source": {"component": COMPONENT, "host": host},
            "firstTimestamp": stamp, "lastTimestamp": stamp, "count": 1,
            "reportingComponent": COMPONENT, "reportingInstance": host,
        }


class RateLimiter:
    """Token bucket per key: ``burst`` at once, then one more every ``refill`` seconds."""

    def __init__(self, burst: int = 25, refill: float = 300.0) -> None:
        self.burst, self.refill = burst, refill
        self._buckets: dict[tuple[str, ...], tuple[float, float]] = {}
        self._lock = threading.Lock()

    def allow(self, key: tuple[str, ...]) -> bool:
        now = time.monotonic()
        with self._lock:
            tokens, last = self._buckets.get(key, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + (now - last) / self.refill)
            if tokens < 1.0:
                self._buckets[key] = (tokens, now)
                return False
            self._buckets[key] = (tokens - 1.0, now)
            if len(self._buckets) > 10 * QUEUE_SIZE:  # forget the buckets refilled by now (pods long gone)
                full = self.burst * self.refill
                self._buckets = {k: v for k, v in self._buckets.items() if now - v[1] < full}
            return True


class Recorder:
    """Queues events and posts them from one background thread; never raises to the caller."""

    def __init__(self, settings: KubeSettings, *, burst: int = 25, refill: float = 300.0,
                 host: str = "", quiet: Quiet | None = None) -> None:
        self.settings = settings
        self.quiet = quiet
        self.limiter = RateLimiter(burst, refill)
        self.host = host or socket.gethostname()
        self._view = ApiKubeView(settings)
        self._queue: queue.Queue[Event | None] = queue.Queue(QUEUE_SIZE)
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.sent = 0
        self.dropped = 0

    def emit(self, event: Event) -> bool:
        """Queue ``event``; False when it was rate-limited or the queue is full (dropped)."""
        if not self.limiter.allow((event.namespace, event.pod, event.reason)):
            log.debug("event %s for pod %s/%s rate-limited", event.reason, event.namespace, event.pod)
            self.dropped += 1
            return False
        self._start()
        try:
            self._queue.put_nowait(event)
        except queue.Full:
            log.warning("event queue full; dropping %s for pod %s/%s", event.reason, event.namespace, event.pod)
            self.dropped += 1
            return False
        return True

    def _start(self) -> None:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="metacni-events", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        while True:
            event = self._queue.get()
            try:
                if event is None:
                    return
                if self.quiet is not None:
                    self.quiet(max(0.0, event.queued + MAX_DEFER - time.monotonic()))
                self._post(event)
            finally:
                self._queue.task_done()

    def _post(self, event: Event) -> None:
        timeout = min(self.settings.timeout, POST_TIMEOUT)
        body: Any = event.body(self.host)  # a plain dict: the client serialises it as is

        def create(api: DynamicApi) -> bool:
            api.create(api.resource("v1", "Event"), event.namespace, body,
                       _request_timeout=(min(self.settings.connect_timeout, timeout), timeout))
            return True

        try:
            if self._view.call(f"POST event for pod {event.namespace}/{event.pod}", create) is None:
                raise LookupError("HTTP 404: the namespace is gone")
            self.sent += 1
        except Exception as exc:  # an event is best effort: log and drop (API errors, timeouts, credentials)
            self.dropped += 1
            log.warning("cannot record event %s for pod %s/%s: %s", event.reason, event.namespace, event.pod,
                        exc.details if isinstance(exc, CNIError) else f"{type(exc).__name__}: {exc}")

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every queued event was posted or dropped; False on timeout."""
        done = self._queue.all_tasks_done
        with done:
            return done.wait_for(lambda: not self._queue.unfinished_tasks, timeout)

    def close(self, timeout: float = 5.0) -> None:
        with self._lock:
            thread, self._thread = self._thread, None
        if thread is not None:
            try:
                self._queue.put(None, timeout=timeout)
            except queue.Full:
                return
            thread.join(timeout)
        self._view.close()


# ---------------------------------------------------------------------- process-wide switch
_installed = False
_kubeconfig: str | None = None
_discovery_dir: Path | None = None
_quiet: Quiet | None = None
_recorders: dict[KubeSettings, Recorder] = {}
_lock = threading.Lock()


def install(kubeconfig: str | None = None, discovery_dir: Path | None = None, quiet: Quiet | None = None) -> None:
    """Record events from now on (the daemon, at start). ``kubeconfig`` replaces the meta
    config's (the daemon's own credentials, as its API view does; "" is the in-cluster service
    account) and ``discovery_dir`` the API discovery cache's; None keeps the config's. ``quiet``
    waits for no CNI call in flight (see the module docstring)."""
    global _installed, _kubeconfig, _discovery_dir, _quiet
    with _lock:
        _installed, _kubeconfig, _discovery_dir, _quiet = True, kubeconfig, discovery_dir, quiet


def uninstall() -> None:
    """Stop recording; queued events are flushed briefly, then the recorders are closed."""
    global _installed
    with _lock:
        _installed = False
        recorders = list(_recorders.values())
        _recorders.clear()
    for rec in recorders:
        rec.flush(2.0)
        rec.close()


def recorder_for(conf: dict[str, Any]) -> Recorder | None:
    """The recorder for a meta config's API settings (one per distinct settings); None when
    events are off or there is no API."""
    if not _installed:
        return None
    if _kubeconfig is not None:
        conf = {**conf, "kubeconfig": _kubeconfig}
    own_dir = _discovery_dir

    def adjust(settings: KubeSettings) -> KubeSettings:
        return settings if own_dir is None else dataclasses.replace(settings, discovery_dir=own_dir)

    quiet = _quiet

    def make(settings: KubeSettings) -> Recorder:
        return Recorder(settings, quiet=quiet)

    try:
        rec: Recorder | None = _shared(conf, _recorders, make, adjust)
    except CNIError:  # a bad API setting: the ADD itself reports it
        return None
    return rec


# ---------------------------------------------------------------------- what the meta plugin reports
def added_message(ifname: str, ips: list[str], label: str) -> str:
    """Multus: ``Add %s %v from %s`` (``%v`` of a []string is ``[a b]``)."""
    return f"Add {ifname} [{' '.join(ips)}] from {label}" if label else f"Add {ifname} [{' '.join(ips)}]"


def added_interfaces(conf: dict[str, Any], namespace: str, pod: str, uid: str,
                     attachments: list[tuple[str, str, list[str]]]) -> None:
    """One ``AddedInterface`` per (label, ifname, CIDR IPs) attachment."""
    rec = recorder_for(conf)
    if rec is None:
        return
    for label, ifname, ips in attachments:
        rec.emit(Event(namespace, pod, uid, NORMAL, ADDED_INTERFACE, added_message(ifname, ips, label)))


def add_failed(conf: dict[str, Any], namespace: str, pod: str, uid: str, reason: str, message: str) -> None:
    rec = recorder_for(conf)
    if rec is not None:
        rec.emit(Event(namespace, pod, uid, WARNING, reason, message))
