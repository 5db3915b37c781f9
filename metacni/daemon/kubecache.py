"""Watch-fed caches of this node's pods, all NetworkAttachmentDefinitions and all Nodes.

Each cache is a list-then-watch loop (an informer) with the ``kubernetes`` dynamic client
(:class:`metacni.meta.kube_dynamic.DynamicApi`): the list read as raw JSON and
``kubernetes.watch.Watch().stream`` of the resource, raw dicts too, so no model or
``ResourceInstance`` is built for fields nobody reads. Pods are trimmed as they arrive, so 500
pods stay small. A failed or expired watch (410 Gone) relists after a backoff, while the cache
keeps serving what it has.

:class:`CachedKubeView` is what the daemon installs with ``metacni.meta.kube.set_view_factory``:
reads come from the caches; the network-status patch goes to the API from the daemon's
:class:`~metacni.daemon.status_writer.StatusWriter`, after the ADD has answered.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from metacni.meta import kube_paths
from metacni.meta.kube import ApiKubeView, KubeSettings, KubeView
from metacni.meta.kube_dynamic import DynamicApi

from .metrics import Metrics
from .status_writer import StatusWrite, StatusWriter

log = logging.getLogger(__name__)
JSON = dict[str, Any]
Key = tuple[str, str]  # (namespace or "", name)

_POD_CONTAINER_DROP = ("env", "envFrom", "command", "args", "volumeMounts", "livenessProbe",
                       "readinessProbe", "startupProbe", "lifecycle", "securityContext")


def trim_pod(pod: JSON) -> JSON:
    """Keep what CNI needs (metadata, nodeName, container resources, phase), drop the bulk."""
    meta = {k: v for k, v in (pod.get("metadata") or {}).items() if k != "managedFields"}
    spec = dict(pod.get("spec") or {})
    spec.pop("volumes", None)
    for key in ("containers", "initContainers", "ephemeralContainers"):
        if key in spec:
            spec[key] = [{k: v for k, v in c.items() if k not in _POD_CONTAINER_DROP} for c in spec[key] or []]
    status = {k: v for k, v in (pod.get("status") or {}).items() if k in ("phase", "podIP", "podIPs")}
    return {"apiVersion": pod.get("apiVersion", "v1"), "kind": pod.get("kind", "Pod"), "metadata": meta,
            "spec": spec, "status": status}


def trim_node(node: JSON) -> JSON:
    meta = node.get("metadata") or {}
    spec = node.get("spec") or {}
    return {"metadata": {"name": meta.get("name"), "uid": meta.get("uid")},
            "spec": {k: spec[k] for k in ("podCIDR", "podCIDRs") if k in spec},
            "status": {"addresses": (node.get("status") or {}).get("addresses") or []}}


def _key(obj: JSON) -> Key:
    meta = obj.get("metadata") or {}
    return (str(meta.get("namespace") or ""), str(meta.get("name") or ""))


class Informer:
    """One resource's list+watch loop and its store. Thread-safe to read."""

    def __init__(self, resource: str, api: DynamicApi, kind: tuple[str, str], metrics: Metrics | None = None,
                 trim: Callable[[JSON], JSON] = lambda o: o, on_change: Callable[[], None] | None = None,
                 watch_timeout: int = 240, request_timeout: float = 30.0, field_selector: str | None = None,
                 on_object: Callable[[JSON], None] | None = None) -> None:
        self.resource = resource
        self._api = api
        self._kind = kind  # (apiVersion, kind), found by discovery
        self._selector = field_selector
        self._metrics = metrics
        self._trim = trim
        self._on_change = on_change
        self.on_object = on_object  # every object listed, added or modified (trimmed), after the store has it
        self._watch_timeout = watch_timeout
        self._request_timeout = request_timeout
        self._store: dict[Key, JSON] = {}
        self._cond = threading.Condition()
        self.synced = threading.Event()
        self._stop = threading.Event()
        self._watch: Any = None
        self._thread = threading.Thread(target=self._run, name=f"informer-{resource}", daemon=True)

    # ------------------------------------------------------------------ reading
    def get(self, namespace: str, name: str) -> JSON | None:
        with self._cond:
            obj = self._store.get((namespace, name))
        return copy.deepcopy(obj) if obj is not None else None

    def wait_for(self, namespace: str, name: str, timeout: float) -> JSON | None:
        """The object, waiting up to ``timeout`` for a watch event to bring it."""
        with self._cond:
            self._cond.wait_for(lambda: (namespace, name) in self._store or self._stop.is_set(), timeout)
            obj = self._store.get((namespace, name))
        return copy.deepcopy(obj) if obj is not None else None

    def items(self) -> list[JSON]:
        with self._cond:
            return list(self._store.values())

    def __len__(self) -> int:
        with self._cond:
            return len(self._store)

    # ------------------------------------------------------------------ loop
    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        watch = self._watch
        if watch is not None:
            watch.stop()  # the (daemon) thread leaves at the next event or the watch's timeout
        with self._cond:
            self._cond.notify_all()

    def _count(self, verb: str, result: str) -> None:
        if self._metrics is not None:
            self._metrics.api_requests.labels(verb, self.resource, result).inc()

    def _changed(self, *objs: JSON) -> None:
        with self._cond:
            self._cond.notify_all()
        if self.on_object is not None:
            for obj in objs:
                try:
                    self.on_object(obj)
                except Exception:
                    log.exception("object handler of %s failed", self.resource)
        if self._on_change is not None:
            try:
                self._on_change()
            except Exception:
                log.exception("change handler of %s failed", self.resource)

    def _selector_kwargs(self) -> dict[str, Any]:
        return {"field_selector": self._selector} if self._selector else {}

    def _list(self) -> str:
        try:
            data = self._api.get(self._api.resource(*self._kind), _request_timeout=self._request_timeout,
                                 **self._selector_kwargs())
        except Exception:
            self._count("list", "error")
            raise
        self._count("list", "ok")
        fresh = {_key(o): self._trim(o) for o in data.get("items") or []}
        with self._cond:
            self._store = fresh
        self.synced.set()
        self._changed(*fresh.values())
        return str((data.get("metadata") or {}).get("resourceVersion") or "")

    def _events(self, rv: str) -> Iterator[JSON]:
        from kubernetes import watch

        self._watch = w = watch.Watch()
        try:
            stream = self._api.watch(w, self._api.resource(*self._kind), resource_version=rv,
                                     allow_watch_bookmarks=True, timeout_seconds=self._watch_timeout,
                                     _request_timeout=(self._request_timeout, self._watch_timeout + 30),
                                     **self._selector_kwargs())
            self._count("watch", "ok")
            for event in stream:
                if self._stop.is_set():
                    return
                yield event
        finally:
            self._watch = None

    def _run(self) -> None:
        backoff = 0.2
        rv = ""
        while not self._stop.is_set():
            try:
                if not rv:
                    rv = self._list()
                for event in self._events(rv):  # an ERROR event is raised by the client as ApiException
                    kind, obj = event.get("type"), event.get("object") or {}
                    new_rv = str((obj.get("metadata") or {}).get("resourceVersion") or rv)
                    if kind in ("ADDED", "MODIFIED"):
                        trimmed = self._trim(obj)
                        with self._cond:
                            self._store[_key(obj)] = trimmed
                        self._changed(trimmed)
                    elif kind == "DELETED":
                        with self._cond:
                            self._store.pop(_key(obj), None)
                        self._changed()
                    rv = new_rv
                backoff = 0.2
            except Exception as exc:
                if self._stop.is_set():
                    return
                self._count("watch", "error")
                log.warning("list/watch of %s failed: %s; relisting in %.1fs", self.resource, exc, backoff)
                # Relist after any failure: the client raises for an expired watch (410), and a
                # relist is always correct where a resumed watch may have missed events.
                rv = ""
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 10.0)


class KubeCaches:
    """The three informers of one daemon, sharing one API client. ``discovery_dir`` holds the
    API discovery cache, shared with the daemon's other clients (:func:`view_factory`); None keeps
    it in memory."""

    def __init__(self, kubeconfig: str | os.PathLike[str] | None, node_name: str, metrics: Metrics | None = None,
                 on_nodes_change: Callable[[], None] | None = None,
                 discovery_dir: Path | None = None) -> None:

        from kubernetes import client, config

        cfg = client.Configuration()
        if kubeconfig:
            config.load_kube_config(config_file=os.fspath(kubeconfig), client_configuration=cfg, persist_config=False)
        else:
            config.load_incluster_config(client_configuration=cfg)
        self.discovery_dir = discovery_dir
        self.api = DynamicApi(client.ApiClient(cfg), discovery_dir)
        self.node_name = node_name
        selector = f"spec.nodeName={node_name}" if node_name else None
        self.pods = Informer("pods", self.api, ("v1", "Pod"), metrics, trim=trim_pod, field_selector=selector)
        self.nads = Informer(kube_paths.NAD_PLURAL, self.api, (kube_paths.NAD_API_VERSION, kube_paths.NAD_KIND),
                             metrics)
        self.nodes = Informer("nodes", self.api, ("v1", "Node"), metrics, trim=trim_node,
                              on_change=on_nodes_change)
        self.informers = (self.pods, self.nads, self.nodes)

    def start(self) -> None:
        for inf in self.informers:
            inf.start()

    def wait_synced(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        return all(inf.synced.wait(max(0.0, deadline - time.monotonic())) for inf in self.informers)

    @property
    def synced(self) -> bool:
        return all(inf.synced.is_set() for inf in self.informers)

    def stop(self) -> None:
        for inf in self.informers:
            inf.stop()
        self.api.close()


class CachedKubeView(KubeView):
    """A ``KubeView`` reading from the caches. A miss waits briefly for the watch to deliver the
    object (a pod is usually bound moments before its sandbox is created), then asks the API
    once, so a slow watch never turns into "no networks"."""

    def __init__(self, caches: KubeCaches, api_view: KubeView, miss_wait: float = 2.0,
                 metrics: Metrics | None = None, status_writer: StatusWriter | None = None) -> None:
        self.caches = caches
        self.api_view = api_view
        self.miss_wait = miss_wait
        self.metrics = metrics
        self.status_writer = status_writer

    def _read(self, informer: Informer, what: str, namespace: str, name: str,
              live: Callable[[str, str], JSON | None]) -> JSON | None:
        if informer.synced.is_set():
            obj = informer.get(namespace, name) or informer.wait_for(namespace, name, self.miss_wait)
            if obj is not None:
                return obj
        log.info("cache miss, reading %s %s/%s from the API", what, namespace, name)
        if self.metrics is not None:
            self.metrics.api_requests.labels("get", informer.resource, "cache-miss").inc()
        return live(namespace, name)

    def get_pod(self, namespace: str, name: str) -> JSON | None:
        return self._read(self.caches.pods, "pod", namespace, name, self.api_view.get_pod)

    def get_nad(self, namespace: str, name: str) -> JSON | None:
        return self._read(self.caches.nads, "network-attachment-definition", namespace, name,
                          self.api_view.get_nad)

    def patch_pod_network_status(self, namespace: str, name: str, status: list[JSON], *, uid: str = "",
                                 container_id: str = "") -> bool:
        """Queued on the daemon's :class:`StatusWriter` when it has one (the ADD answers without
        waiting for the API); written at once otherwise."""
        if self.status_writer is None:
            return self._write(namespace, name, status, uid)
        self.status_writer.submit(StatusWrite(namespace, name, uid, container_id, status, self._write))
        return True

    def _write(self, namespace: str, name: str, status: list[JSON], uid: str) -> bool:
        try:
            written = self.api_view.patch_pod_network_status(namespace, name, status, uid=uid)
        except Exception:
            self._count("error")
            raise
        self._count("ok" if written else "not-found")
        return written

    def _count(self, result: str) -> None:
        if self.metrics is not None:
            self.metrics.api_requests.labels("patch", "pods/status", result).inc()


def pod_still_there(pods: Informer, namespace: str, name: str, uid: str) -> bool:
    """False when the synced pod cache says the pod is deleted, or re-created (another UID):
    a network-status write for it is moot (:class:`StatusWriter`'s ``still_wanted``)."""
    if not pods.synced.is_set():
        return True
    pod = pods.get(namespace, name)
    if pod is None:
        return False
    return not uid or (pod.get("metadata") or {}).get("uid") in (None, "", uid)


def view_factory(caches: KubeCaches, kubeconfig: str | os.PathLike[str] | None,
                 metrics: Metrics | None = None,
                 status_writer: StatusWriter | None = None) -> Callable[[Mapping[str, Any]], KubeView | None]:
    """The factory for ``set_view_factory``: the cache view, writing (and reading misses) with
    the daemon's own credentials and discovery cache and the config's timeouts and retries.

    Not with the config's ``kubeconfig``: that path is the host's view, written for the
    standalone fallback, and a DaemonSet container mounts the conf dir elsewhere. The daemon
    already holds working credentials (the ones its watches use)."""

    views: dict[KubeSettings, CachedKubeView] = {}
    lock = threading.Lock()

    own = Path(kubeconfig) if kubeconfig else None

    def factory(conf: Mapping[str, Any]) -> KubeView | None:
        settings = dataclasses.replace(KubeSettings.from_conf(conf), kubeconfig=own,
                                       discovery_dir=caches.discovery_dir)
        with lock:
            view = views.get(settings)
            if view is None:
                view = views[settings] = CachedKubeView(caches, ApiKubeView(settings), metrics=metrics,
                                                        status_writer=status_writer)
            return view

    return factory
