"""The node daemon: one warm process serving every CNI call the shim forwards.

Warm means: plugins imported and registered once, firewall backends and netlink code loaded,
and the Kubernetes objects this node needs held in watch-fed caches, so a pod ADD reads
nothing from the API (the network-status patch is its only API request).
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import json
import logging
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from metacni.engine.cache import ResultCache
from metacni.engine.chain import ChainRunner
from metacni.engine.invoke import Invoker
from metacni.engine.registry import Registry
from metacni.engine.request import ADD, CHECK, DEL, GC, STATUS
from metacni.engine.skel import dispatch
from metacni.firewall import libnft
from metacni.kernel import reaper
from metacni.spec import safejson, versions
from metacni.spec.errors import CNIError, Code

from . import gc as gcmod
from .config import DaemonConfig
from .httpserve import Limits, Reply
from .locks import KeyedLocks, SharedExclusiveLock
from .metrics import Metrics
from .node_policy import NodeConfigPolicy
from .pending_dels import PendingDels
from .protocol import CNIRequest
from .server import Abandoned, UnixServer

log = logging.getLogger("metacni.daemon")
NOT_READY = 50  # CNI "plugin not available" (STATUS)
READYZ_WAIT_LIMIT = 30.0  # longest a status request waits (link reaper idle, network-status written)


class Unavailable(CNIError):
    """The daemon (not a plugin) refuses the call for now: HTTP 503, code 11."""

    def __init__(self, msg: str, details: str = "") -> None:
        super().__init__(Code.TRY_AGAIN_LATER, msg, details)


def _status_of(exc: CNIError) -> int:
    return 503 if isinstance(exc, Unavailable) else 500 if exc.code == Code.INTERNAL else 400


def _config_meta(stdin: bytes) -> tuple[str, str | None]:
    try:
        conf = safejson.loads(stdin)
    except ValueError:  # also deep nesting (safejson): skel reports it to the caller
        return "", None
    if not isinstance(conf, dict):
        return "", None
    version = conf.get("cniVersion")
    return str(conf.get("name") or ""), version if isinstance(version, str) and versions.is_known(version) else None


class Daemon:
    def __init__(self, cfg: DaemonConfig) -> None:
        self.cfg = cfg
        self.metrics = Metrics()
        self.registry = Registry()
        self.invoker = Invoker(self.registry)
        self.cache = ResultCache(cfg.cache_dir)
        self.runner = ChainRunner(self.invoker, [p for p in cfg.cni_path.split(os.pathsep) if p], self.cache)
        self.locks = KeyedLocks()
        self.gate = SharedExclusiveLock()
        self.slots = threading.BoundedSemaphore(max(1, cfg.concurrency))
        self.limits = Limits(read_timeout=cfg.read_timeout, write_timeout=cfg.write_timeout,
                             max_connections=cfg.max_connections, workers=cfg.workers, queue_size=cfg.queue_size)
        # GET /readyz?waitReaperIdle=N&waitStatusWritten=N on the socket: see status_reply.
        self.server = UnixServer(cfg.socket, self.serve, self.status_reply, self.limits,
                                 events=self.metrics.events("cni"), delegate=self.serve_delegate)
        self.pending = PendingDels(cfg.pending_path(), self._replay_del)
        self.pending.on_pass = lambda stats: self.metrics.pending_dels.set(stats.left)
        self.node_policy = NodeConfigPolicy(cfg.conf_dir / str(cfg.node_config.get("file_name") or "00-metacni.conf"))
        self.caches: Any = None
        self.routes: Any = None
        self.gc_loop: gcmod.GCLoop | None = None
        self.health: Any = None
        self.confwatch: Any = None
        self.hotplug: Any = None
        self.status_writer: Any = None
        self.status_repaired = threading.Event()  # the start-up pass of _repair_status is done
        self.stopping = threading.Event()
        self.stopped = threading.Event()

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        t0 = time.monotonic()
        self.registry.load_all()  # import every plugin now, not on a pod's first ADD
        reaper.enable()  # DEL detaches veths and deletes them in the background (bridge detach.py)
        libnft.set_home()  # the daemon's netns: its nftables context stays open past the last pod
        if self.cfg.use_api and (self.cfg.kubeconfig is not None or os.environ.get("KUBERNETES_SERVICE_HOST")):
            self._start_kube()
        # DELs the shim recorded while no daemon listened run before any new call can.
        self.pending.replay()
        self.server.start()
        self.pending.start(self.cfg.gc_period)
        if self.cfg.metrics_port >= 0 and self.cfg.metrics_port:
            from .health import HealthServer

            # Same timeouts and connection bound as the socket; two workers are plenty for /metrics.
            self.health = HealthServer(self.cfg.metrics_host, self.cfg.metrics_port, self.metrics.exposition,
                                       self.healthy, self.ready_state, dataclasses.replace(self.limits, workers=2,
                                                                                           queue_size=16),
                                       events=self.metrics.events("health"))
            self.health.start()
        if self.caches is not None:
            self.gc_loop = gcmod.GCLoop(self.gc_once, self.cfg.gc_period)
            self.gc_loop.start()
        if self.cfg.regenerate_config or self.cfg.node_kubeconfig:
            from .confwatch import ConfWatcher

            self.confwatch = ConfWatcher(self.cfg.conf_dir, self.cfg)
            self.confwatch.start()
        # Everything imported so far lives as long as the process: move it out of the cyclic
        # collector's reach, so full collections during requests walk only request garbage.
        gc.collect()
        gc.freeze()
        log.info("daemon started", extra={"seconds": round(time.monotonic() - t0, 3),
                                          "plugins": self.registry.types(), "socket": self.cfg.socket})

    def _start_kube(self) -> None:
        from metacni.meta import kube

        from .kubecache import KubeCaches, pod_still_there, view_factory
        from .status_writer import StatusWriter

        def nodes_changed() -> None:
            if self.routes is not None:
                self.routes.kick()

        # the API discovery cache, under metacni's part of the cache dir (docs/design/1603-kube-dynamic-client.md)
        discovery_dir = Path(self.cfg.cache_dir) / "metacni" / kube.DISCOVERY_SUBDIR
        self.caches = KubeCaches(self.cfg.kubeconfig, self.cfg.node_name, self.metrics, nodes_changed, discovery_dir)
        if self.cfg.dynamic_networks:
            from .hotplug import HotplugWatcher, api_condition_writer

            self.hotplug = HotplugWatcher(self.caches.pods.get, self.node_policy.node_config, self.invoker,
                                          self.container_lock, self._cni_path(), api_condition_writer(self.caches.api))
            self.caches.pods.on_object = self.hotplug.observe
            self.hotplug.start()
        # network-status is written after the ADD answers (docs/design/1506-network-status-after-the-answer.md)
        self.status_writer = StatusWriter(lambda ns, name, uid: pod_still_there(self.caches.pods, ns, name, uid),
                                          quiet=self.server.routes.in_flight.wait_quiet,
                                          on_change=self.metrics.status_pending.set,
                                          on_result=lambda outcome: self.metrics.status_writes.labels(outcome).inc())
        kube.set_view_factory(view_factory(self.caches, self.cfg.kubeconfig, self.metrics, self.status_writer))
        from metacni.meta import events

        # pod events, with the daemon's credentials ("": in-cluster)
        events.install(str(self.cfg.kubeconfig) if self.cfg.kubeconfig is not None else "", discovery_dir,
                       quiet=self.server.routes.in_flight.wait_quiet)
        if self.cfg.routes:
            from .routes import RouteReconciler

            def on_result(stats: Any) -> None:
                self.metrics.routes.set(stats.owned)

            self.routes = RouteReconciler(self.caches.nodes.items, self.cfg.node_name, self.cfg.route_protocol,
                                          self.cfg.reconcile_period, on_result=on_result)
        self.caches.start()
        threading.Thread(target=self._repair_status, name="status-repair", daemon=True).start()
        if self.routes is not None:
            threading.Thread(target=self._start_routes, name="routes-start", daemon=True).start()

    def _repair_status(self) -> None:
        """Queue the network-status a previous daemon answered for but never wrote (it stopped
        first): recorded attachments of live sandboxes whose pod has none (:mod:`metacni.meta.status_repair`)."""
        try:
            conf = self.node_policy.node_config()
            if not conf or not self.caches.pods.synced.wait(timeout=None) or self.stopping.is_set():
                return
            from metacni.meta import kube
            from metacni.meta.config import MetaConfig
            from metacni.meta.status_repair import MissingStatus, repair_missing

            cfg, view = MetaConfig.from_dict(conf), kube.view_for(conf)
            if view is None:
                return

            def submit(missing: MissingStatus) -> None:
                log.info("network-status of pod %s/%s was never written; writing it", missing.namespace, missing.name)
                view.patch_pod_network_status(missing.namespace, missing.name, missing.entries, uid=missing.uid,
                                              container_id=missing.container_id)

            repair_missing(cfg.cni_dir, cfg.device_info_dir, self.caches.pods.get, submit, self.locks.hold)
        except Exception:  # a repair that fails must not take the daemon down
            log.exception("network-status repair failed")
        finally:
            self.status_repaired.set()

    def _start_routes(self) -> None:
        # Reconciling against an empty, unsynced node list would delete every owned route.
        if self.caches.nodes.synced.wait(timeout=None) and not self.stopping.is_set():
            self.routes.start()

    def stop(self) -> None:
        """Graceful shutdown: not ready at once, finish requests in flight, keep the config."""
        if self.stopping.is_set():
            return
        self.stopping.set()
        self.metrics.ready.set(0)
        log.info("shutting down")
        if not self.server.stop(self.cfg.shutdown_grace):
            log.warning("requests still in flight after the grace period")
        if self.status_writer is not None:  # what the answered ADDs left to write, while the API client lives
            self.status_writer.stop(self.cfg.shutdown_grace)
        for part in (self.gc_loop, self.pending, self.routes, self.confwatch, self.hotplug, self.caches):
            if part is not None:
                part.stop()
        if not reaper.disable(self.cfg.shutdown_grace):
            log.warning("link deletions still pending after the grace period")
        if self.caches is not None:
            from metacni.meta import kube

            kube.set_view_factory(None)
            from metacni.meta import events

            events.uninstall()
        if self.health is not None:
            self.health.stop()
        self.stopped.set()

    # ------------------------------------------------------------------ readiness
    def healthy(self) -> bool:
        """Liveness: not stopped, and the CNI socket's I/O loop still accepts (while not stopping)."""
        if self.stopped.is_set():
            return False
        return self.stopping.is_set() or self.server.healthy()

    def indicator_ok(self) -> bool:
        path = self.cfg.readiness_indicator_file
        return path is None or path.exists()

    def ready_state(self) -> dict[str, Any]:
        caches = self.caches is None or self.caches.synced
        indicator = self.indicator_ok()
        ready = caches and indicator and not self.stopping.is_set()
        self.metrics.ready.set(1 if ready else 0)
        return {"ready": ready, "daemon": not self.stopping.is_set(), "caches": caches,
                "readinessIndicator": indicator}

    def status_reply(self, env: dict[str, str]) -> dict[str, Any]:
        """Readiness plus the link reaper's and the network-status writer's state (GET /readyz on
        the socket; ``env`` is its query's parameters), each waited for first when asked, for at
        most :data:`READYZ_WAIT_LIMIT` seconds: ``env["waitReaperIdle"]`` until the reaper has
        deleted every detached link, ``env["waitStatusWritten"]`` until every queued
        network-status is written (or dropped), so a caller can observe "every DEL's veth is
        gone" or "the pod's network-status is in the API" without sleeping."""
        reaper_wait, status_wait = (_seconds(env.get(key)) for key in ("waitReaperIdle", "waitStatusWritten"))
        if reaper_wait > 0:
            reaper.wait_idle(reaper_wait)
        writer = self.status_writer
        if status_wait > 0 and writer is not None:
            deadline = time.monotonic() + status_wait
            self.status_repaired.wait(status_wait)  # what the start-up repair queues counts too
            writer.flush(max(0.0, deadline - time.monotonic()))
        return {**self.ready_state(), "reaper": reaper.status(),
                "networkStatusPending": writer.pending() if writer is not None else 0}

    def wait_ready(self, timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        if self.caches is not None:
            self.caches.wait_synced(timeout)
        state = self.ready_state()
        while not state["ready"] and not self.stopping.is_set() and time.monotonic() < deadline:
            self.stopping.wait(min(0.1, max(0.0, deadline - time.monotonic())))
            state = self.ready_state()
        return state

    # ------------------------------------------------------------------ requests
    def serve(self, request: CNIRequest, abandoned: Abandoned | None = None) -> Reply:
        """One CNI call: the HTTP status (200 success, 400 a CNI error, 503 the daemon cannot
        serve it now, 500 an internal error) and exactly what the shim prints. ``abandoned`` is
        asked right before the plugins run (see :class:`metacni.daemon.server.Ordering`)."""
        env, stdin = request.env, request.stdin
        command = env.get("CNI_COMMAND", "")
        network, version = _config_meta(stdin)
        t0 = time.monotonic()
        self.metrics.inflight.inc()
        try:
            stdin = self.node_policy.apply(stdin)  # node-only keys come from the node's config
            reply = self._run(command, env, stdin, abandoned)
            out, status, result = (json.dumps(reply) + "\n" if reply is not None else ""), 200, "ok"
        except CNIError as exc:
            out, status, result = exc.to_json(version) + "\n", _status_of(exc), f"error{int(exc.code)}"
            log.warning("%s failed", command, extra={"verb": command, "network": network, "cniCode": int(exc.code),
                                                      "container": env.get("CNI_CONTAINERID", ""), "error": str(exc)})
        except Exception as exc:
            log.exception("%s crashed", command)
            err = CNIError(Code.INTERNAL, "internal error", f"{type(exc).__name__}: {exc}")
            out, status, result = err.to_json(version) + "\n", 500, "error999"
        finally:
            self.metrics.inflight.dec()
        seconds = time.monotonic() - t0
        self.metrics.observe(command or "?", network, result, seconds)
        log.info("served", extra={"verb": command, "network": network, "container": env.get("CNI_CONTAINERID", ""),
                                  "ifname": env.get("CNI_IFNAME", ""), "result": result,
                                  "ms": round(seconds * 1000, 2)})
        return Reply(status, out.encode())

    @contextlib.contextmanager
    def container_lock(self, container_id: str) -> Iterator[None]:
        """What a CNI call of ``container_id`` holds while its plugins run (hot-plug work too)."""
        with self.gate.shared(), self.locks.hold(container_id), self.slots:
            yield

    def serve_delegate(self, body: bytes) -> Reply:
        """Multus' ``POST /delegate`` (:func:`metacni.daemon.hotplug.delegate_reply`)."""
        from .hotplug import delegate_reply

        if self.stopping.is_set():
            return Reply(503, b'{"code": 11, "msg": "metacni daemon is shutting down"}\n')
        return delegate_reply(body, self.node_policy.node_config, self.invoker, self.container_lock,
                              self._cni_path())

    def _cni_path(self) -> tuple[str, ...]:
        """Where delegate binaries are for work the daemon starts itself (no runtime CNI_PATH)."""
        return tuple(p for p in self.cfg.cni_path.split(os.pathsep) if p)

    def _replay_del(self, request: CNIRequest) -> tuple[bool, str]:
        reply = self.serve(request)
        return reply.status == 200, reply.body.decode("utf-8", "replace").strip()

    def _run(self, command: str, env: dict[str, str], stdin: bytes,
             abandoned: Abandoned | None) -> dict[str, Any] | None:
        if self.stopping.is_set() and command != DEL:
            raise Unavailable("metacni daemon is shutting down", "retry in a moment")
        if command in (ADD, CHECK):
            state = self.wait_ready(self.cfg.ready_timeout)
            if not state["ready"]:
                raise Unavailable("metacni daemon is not ready",
                                  f"after {self.cfg.ready_timeout:g}s: {_not_ready(state)}")
        if command == STATUS:
            state = self.ready_state()
            if not state["ready"]:
                raise CNIError(NOT_READY, "metacni is not ready", _not_ready(state))
        if command == GC:
            with self.gate.exclusive():
                return dispatch(env, stdin, self.invoker)
        if command in (ADD, DEL, CHECK):
            with self.container_lock(env.get("CNI_CONTAINERID", "")):
                why = abandoned() if abandoned is not None else None
                if command != DEL and self.stopping.is_set():
                    why = "the daemon is shutting down"
                if why:
                    raise Unavailable(f"{command} not run: {why}",
                                      f"container {env.get('CNI_CONTAINERID', '')!r}; the runtime retries if it "
                                      "still wants it")
                if command == DEL and self.status_writer is not None:  # its interfaces are going away
                    self.status_writer.cancel(env.get("CNI_CONTAINERID", ""))
                return dispatch(env, stdin, self.invoker)
        return dispatch(env, stdin, self.invoker)

    def gc_once(self) -> int:
        """Periodic GC against the pod cache (only once it is synced: an empty cache is not
        "no pods")."""
        if self.caches is None or not self.caches.pods.synced.is_set():
            return 0
        with self.gate.exclusive():
            n = gcmod.collect(self.runner, self.cache, self.caches.pods.get, self.cfg.gc_grace)
        if n:
            self.metrics.gc_reclaimed.labels("attachment").inc(n)
        return n


def _seconds(value: str | None) -> float:
    """A query parameter as a wait in seconds: 0 when absent or not a number, at most the limit."""
    try:
        return min(float(value or 0), READYZ_WAIT_LIMIT)
    except ValueError:
        return 0.0


def _not_ready(state: dict[str, Any]) -> str:
    why = []
    if not state.get("daemon"):
        why.append("the daemon is shutting down")
    if not state.get("caches"):
        why.append("the Kubernetes caches have not synced")
    if not state.get("readinessIndicator"):
        why.append("the readiness indicator file is missing (is the primary network ready?)")
    return "; ".join(why) or "unknown"
