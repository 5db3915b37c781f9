"""``FakeAPIServer``: lifecycle, kubeconfig, request counters, fault injection and seeding helpers.

Tests drive it two ways: over HTTP with the real ``kubernetes`` client (pointed at the kubeconfig
it writes), and directly from Python to seed or inspect state. Both paths go through the same
store, so direct writes produce watch events exactly like HTTP writes.

Above 400 lines on purpose: tests reach the whole fake cluster (lifecycle, counters, faults,
seeding) through this one object.
"""

from __future__ import annotations

import copy
import json
import ssl
import threading
import time
from collections import Counter, deque
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import yaml

from . import errors, resources
from .errors import ApiError
from .handler import HTTPServer
from .patch import MERGE_PATCH, STRATEGIC_MERGE_PATCH
from .resources import JSON
from .selectors import selector_predicate
from .store import ANY_PART, Store

DEFAULT_TOKEN = "metacni-fake-token"
PAUSE_IMAGE = "registry.k8s.io/pause:3.9"


@dataclass
class Fault:
    """What to do to matching requests: wait ``delay`` seconds (and for ``gate`` to be set, so a
    test can hold requests in flight), then drop the connection (``drop``), answer ``status``
    with a Status body, or (neither) serve the request normally.

    ``verb``/``resource`` of None match anything; ``times`` of None means until removed.
    Requests the client retries on its own (urllib3 does for idempotent ones) each take one.
    """

    status: int | None = None
    verb: str | None = None
    resource: str | None = None
    delay: float = 0.0
    drop: bool = False
    times: int | None = None
    retry_after: int | None = None
    message: str = "injected fault"
    hits: int = 0
    gate: threading.Event | None = None

    def matches(self, verb: str, resource: str) -> bool:
        return (self.verb in (None, verb)) and (self.resource in (None, resource))


@dataclass(frozen=True)
class RequestRecord:
    verb: str
    resource: str
    time: float


class FakeAPIServer:
    """A Kubernetes API server double on 127.0.0.1 speaking the real REST JSON.

    ``start``/``stop`` may alternate: the port and all state survive a stop, so a test can make the
    API unreachable and bring it back. Request counters are keyed by ``(verb, resource)``, with
    verbs get/list/watch/create/update/patch/delete/deletecollection and resources such as
    ``pods``, ``pods/status``, ``nodes``, ``network-attachment-definitions`` and ``discovery``.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, token: str = DEFAULT_TOKEN,
                 require_auth: bool = False, bookmark_interval: float = 1.0,
                 event_history: int = 1000, ssl_context: ssl.SSLContext | None = None) -> None:
        """``ssl_context``: serve HTTPS with it (a server-side context with a certificate)."""
        self.host = host
        self.ssl_context = ssl_context
        self._port = port
        self.token = token
        self.require_auth = require_auth
        self.bookmark_interval = bookmark_interval
        self.store = Store(event_history=event_history)
        self._lock = threading.Lock()
        self._counts: Counter[tuple[str, str]] = Counter()
        self._requests: deque[RequestRecord] = deque(maxlen=10_000)
        self._faults: list[Fault] = []
        self._watches: Counter[str] = Counter()
        self._watch_cond = threading.Condition(self._lock)
        self._stopping = threading.Event()
        self._httpd: HTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> FakeAPIServer:
        """Listen (on the same port as before after a ``stop``) and serve in a daemon thread."""
        if self._httpd is not None:
            return self
        self._stopping.clear()
        self._httpd = HTTPServer((self.host, self._port), self)
        self._port = self._httpd.server_address[1]
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.1},
                                        name=f"fakeapi-{self._port}", daemon=True)
        self._thread.start()
        return self

    def stop(self, grace: float = 2.0) -> None:
        """Stop listening, end open watches (cleanly if they finish within ``grace``), and cut
        every remaining connection so pooled keep-alive sockets fail too."""
        httpd, thread = self._httpd, self._thread
        if httpd is None:
            return
        self._stopping.set()
        self.store.close_watchers()
        httpd.shutdown()
        httpd.server_close()
        with self._watch_cond:
            self._watch_cond.wait_for(lambda: not +self._watches, timeout=grace)
        httpd.cut_connections()
        if thread is not None:
            thread.join(timeout=5)
        self._httpd = self._thread = None

    @property
    def running(self) -> bool:
        return self._httpd is not None

    def __enter__(self) -> FakeAPIServer:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    @property
    def port(self) -> int:
        return self._port

    @property
    def url(self) -> str:
        return f"{'https' if self.ssl_context else 'http'}://{self.host}:{self._port}"

    # -- kubeconfig ------------------------------------------------------------------------

    def kubeconfig(self, namespace: str = "default") -> JSON:
        return {
            "apiVersion": "v1", "kind": "Config", "preferences": {},
            "clusters": [{"name": "fake", "cluster": {"server": self.url}}],
            "users": [{"name": "fake", "user": {"token": self.token}}],
            "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "fake",
                                                      "namespace": namespace}}],
            "current-context": "fake",
        }

    def write_kubeconfig(self, path: str | Path, namespace: str = "default", *, as_json: bool = False) -> Path:
        """Write a kubeconfig for this server (token auth; with TLS, no CA: add one); needs a bound port.
        ``as_json``: JSON, which is YAML too, and what a standalone CNI call reads without yaml."""
        if not self._port:
            raise RuntimeError("start() the server before writing its kubeconfig")
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        doc = self.kubeconfig(namespace)
        target.write_text(json.dumps(doc, indent=2) if as_json else yaml.safe_dump(doc, sort_keys=False))
        return target

    # -- counters --------------------------------------------------------------------------

    def _record(self, verb: str, resource: str) -> None:
        with self._lock:
            self._counts[(verb, resource)] += 1
            self._requests.append(RequestRecord(verb, resource, time.monotonic()))

    def connections_accepted(self) -> int:
        """TCP connections accepted so far (since the last ``start``): a client that pools
        keep-alive connections opens one per concurrent request, not one per request."""
        httpd = self._httpd
        return httpd.accepted if httpd is not None else 0

    @property
    def counts(self) -> Counter[tuple[str, str]]:
        """A snapshot of request counts by ``(verb, resource)``; missing keys read as 0."""
        with self._lock:
            return Counter(self._counts)

    def count(self, verb: str | Sequence[str] | None = None, resource: str | None = None) -> int:
        """Requests matching a verb (or any of several) and a resource; None matches all."""
        verbs = (verb,) if isinstance(verb, str) else verb
        return sum(n for (v, r), n in self.counts.items()
                   if (verbs is None or v in verbs) and (resource is None or r == resource))

    def reads(self, resource: str) -> int:
        """get + list + watch requests for a resource (e.g. to assert none happened)."""
        return self.count(("get", "list", "watch"), resource)

    @property
    def requests(self) -> list[RequestRecord]:
        with self._lock:
            return list(self._requests)

    def reset_counts(self) -> None:
        with self._lock:
            self._counts.clear()
            self._requests.clear()

    # -- fault injection -------------------------------------------------------------------

    def inject_fault(self, status: int | None = None, *, verb: str | None = None,
                     resource: str | None = None, delay: float = 0.0, drop: bool = False,
                     times: int | None = None, retry_after: int | None = None,
                     message: str = "injected fault", gate: threading.Event | None = None) -> Fault:
        """Add a fault rule (first matching rule wins); returns it for ``remove_fault``/``hits``."""
        fault = Fault(status, verb, resource, delay, drop, times, retry_after, message, gate=gate)
        with self._lock:
            self._faults.append(fault)
        return fault

    def remove_fault(self, fault: Fault) -> None:
        with self._lock:
            if fault in self._faults:
                self._faults.remove(fault)

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    @contextmanager
    def fault(self, status: int | None = None, **kwargs: Any) -> Iterator[Fault]:
        """``with server.fault(503, resource="pods"):`` — the fault lasts for the block."""
        fault = self.inject_fault(status, **kwargs)
        try:
            yield fault
        finally:
            self.remove_fault(fault)

    def _take_fault(self, verb: str, resource: str) -> Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.matches(verb, resource):
                    fault.hits += 1
                    if fault.times is not None and fault.hits >= fault.times:
                        self._faults.remove(fault)
                    return fault
        return None

    # -- watches ---------------------------------------------------------------------------

    def _watch_opened(self, resource: str) -> None:
        with self._watch_cond:
            self._watches[resource] += 1
            self._watch_cond.notify_all()

    def _watch_closed(self, resource: str) -> None:
        with self._watch_cond:
            self._watches[resource] -= 1
            self._watch_cond.notify_all()

    def active_watches(self, resource: str | None = None) -> int:
        with self._lock:
            return sum(n for r, n in self._watches.items() if resource in (None, r))

    def wait_for_watches(self, count: int = 1, resource: str | None = None, timeout: float = 10.0) -> bool:
        """Block until at least ``count`` watches are open: lets a test mutate state only once an
        informer is really listening, instead of sleeping."""
        with self._watch_cond:
            return self._watch_cond.wait_for(
                lambda: sum(n for r, n in self._watches.items() if resource in (None, r)) >= count,
                timeout=timeout)

    @property
    def resource_version(self) -> int:
        return self.store.resource_version

    def compact(self) -> int:
        """Drop the event log, so watches from any older resourceVersion get 410 Expired."""
        return self.store.compact()

    # -- generic direct access -------------------------------------------------------------

    def create_object(self, plural: str, body: JSON, namespace: str | None = None) -> JSON:
        """Create as a client would, except that a given metadata.uid and status are kept."""
        rt = resources.lookup(plural)
        return copy.deepcopy(self.store.create(rt, namespace, body, trusted=True))

    def get_object(self, plural: str, name: str, namespace: str | None = None) -> JSON | None:
        try:
            return copy.deepcopy(self.store.get(resources.lookup(plural), namespace, name))
        except ApiError as exc:
            if exc.code == 404:
                return None
            raise

    def list_objects(self, plural: str, namespace: str | None = None, label_selector: str | None = None,
                     field_selector: str | None = None) -> list[JSON]:
        rt = resources.lookup(plural)
        items, _ = self.store.select(rt, selector_predicate(rt, namespace, label_selector, field_selector))
        return copy.deepcopy(items)

    def patch_object(self, plural: str, name: str, patch: JSON, namespace: str | None = None, *,
                     strategic: bool = True) -> JSON:
        """Patch spec, metadata and status at once (no subresource split): a test-only power."""
        rt = resources.lookup(plural)
        kind = STRATEGIC_MERGE_PATCH if strategic else MERGE_PATCH
        return copy.deepcopy(self.store.patch(rt, namespace, name, kind, patch, ANY_PART))

    def delete_object(self, plural: str, name: str, namespace: str | None = None) -> JSON:
        """Delete (404 ``ApiError`` if absent); emits a DELETED event."""
        return copy.deepcopy(self.store.delete(resources.lookup(plural), namespace, name))

    # -- pods ------------------------------------------------------------------------------

    def add_pod(self, namespace: str, name: str, *, node_name: str | None = None,
                labels: dict[str, str] | None = None, annotations: dict[str, str] | None = None,
                uid: str | None = None, phase: str = "Pending", pod_ip: str | None = None,
                containers: list[JSON] | None = None, spec: JSON | None = None) -> JSON:
        """A pod the real client can deserialize (it has a container); ``spec`` adds fields."""
        pod_spec: JSON = {"containers": containers or [{"name": "app", "image": PAUSE_IMAGE}]}
        pod_spec.update(spec or {})
        if node_name:
            pod_spec["nodeName"] = node_name
        status: JSON = {"phase": phase}
        if pod_ip:
            status.update(podIP=pod_ip, podIPs=[{"ip": pod_ip}])
        meta: JSON = {"name": name, "namespace": namespace}
        for key, value in (("labels", labels), ("annotations", annotations), ("uid", uid)):
            if value:
                meta[key] = value
        return self.create_object("pods", {"apiVersion": "v1", "kind": "Pod", "metadata": meta,
                                           "spec": pod_spec, "status": status}, namespace)

    def get_pod(self, namespace: str, name: str) -> JSON | None:
        return self.get_object("pods", name, namespace)

    def patch_pod(self, namespace: str, name: str, patch: JSON) -> JSON:
        return self.patch_object("pods", name, patch, namespace)

    def delete_pod(self, namespace: str, name: str) -> JSON:
        return self.delete_object("pods", name, namespace)

    # -- network attachment definitions ----------------------------------------------------

    def add_nad(self, namespace: str, name: str, config: str | JSON, *,
                annotations: dict[str, str] | None = None) -> JSON:
        """A NetworkAttachmentDefinition; a dict ``config`` is serialised as the CRD requires."""
        meta: JSON = {"name": name, "namespace": namespace}
        if annotations:
            meta["annotations"] = annotations
        text = config if isinstance(config, str) else json.dumps(config)
        return self.create_object(resources.NADS.plural, {
            "apiVersion": resources.NADS.api_version, "kind": resources.NADS.kind,
            "metadata": meta, "spec": {"config": text}}, namespace)

    def get_nad(self, namespace: str, name: str) -> JSON | None:
        return self.get_object(resources.NADS.plural, name, namespace)

    def update_nad(self, namespace: str, name: str, config: str | JSON) -> JSON:
        text = config if isinstance(config, str) else json.dumps(config)
        return self.patch_object(resources.NADS.plural, name, {"spec": {"config": text}}, namespace,
                                 strategic=False)

    def delete_nad(self, namespace: str, name: str) -> JSON:
        return self.delete_object(resources.NADS.plural, name, namespace)

    # -- nodes -----------------------------------------------------------------------------

    def add_node(self, name: str, pod_cidrs: str | Sequence[str] | None = None,
                 internal_ip: str | None = None, *, labels: dict[str, str] | None = None,
                 ready: bool = True) -> JSON:
        """A node with spec.podCIDR(s), an InternalIP address and a Ready condition."""
        cidrs = [pod_cidrs] if isinstance(pod_cidrs, str) else list(pod_cidrs or [])
        spec: JSON = {"podCIDR": cidrs[0], "podCIDRs": cidrs} if cidrs else {}
        addresses = [{"type": "InternalIP", "address": internal_ip}] if internal_ip else []
        addresses.append({"type": "Hostname", "address": name})
        status: JSON = {
            "addresses": addresses,
            "conditions": [{"type": "Ready", "status": "True" if ready else "False",
                            "reason": "KubeletReady" if ready else "KubeletNotReady"}],
        }
        meta: JSON = {"name": name, "labels": {"kubernetes.io/hostname": name, **(labels or {})}}
        return self.create_object("nodes", {"apiVersion": "v1", "kind": "Node", "metadata": meta,
                                            "spec": spec, "status": status})

    def get_node(self, name: str) -> JSON | None:
        return self.get_object("nodes", name)

    def patch_node(self, name: str, patch: JSON) -> JSON:
        return self.patch_object("nodes", name, patch)

    def delete_node(self, name: str) -> JSON:
        return self.delete_object("nodes", name)

    def add_namespace(self, name: str) -> JSON:
        return self.create_object("namespaces", {"metadata": {"name": name}})


__all__ = ["DEFAULT_TOKEN", "ApiError", "Fault", "FakeAPIServer", "RequestRecord", "errors"]
