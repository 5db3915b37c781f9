"""Periodic garbage collection against the pods this node still runs.

A crash between two steps of an ADD or DEL (or a DEL the runtime never sent) leaves leases,
rules, links or cache entries behind. Every ``period`` seconds the daemon collects, per
network found in the result cache, the attachments whose pod is still in the pod cache (by
namespace, name and, when recorded, UID) and runs a CNI GC with exactly those as valid:
the engine DELs every other cached attachment, then each plugin releases what no valid
attachment holds. A static pod (kubelet runs it from a file) is seen in the API through its
mirror pod, whose UID differs from the one kubelet passes in CNI_ARGS: a mirror pod of the
same namespace and name keeps the attachment (see :func:`attachment_is_live`). Entries
younger than ``grace`` are kept: their pod may not have reached the watch cache yet.

The API only suggests that a sandbox is gone; the node knows. An attachment whose network
namespace still exists (:func:`metacni.kernel.netns.is_netns` on the cached ``CNI_NETNS``) is
never collected, whatever the API says: its sandbox is alive, its interface still holds the
address, and the runtime will DEL it when it removes the sandbox. This covers a static pod
whose mirror pod is missing from the API (kubelet recreates mirrors lazily), a pod deleted
with ``--force`` while kubelet still runs it, and an API that lags. Only attachments whose
namespace is gone too (the runtime removed the sandbox and the DEL was lost, a reboot) are
reclaimed. Each pass also deletes host veths detached by a DEL whose deletion a crash
interrupted (the link reaper's marked links).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from typing import Any

from metacni.engine.cache import CacheEntry, ResultCache
from metacni.engine.chain import ChainRunner
from metacni.kernel import netns, reaper
from metacni.netlink.rtnl import rtnl
from metacni.spec.config import network_list_from_bytes
from metacni.spec.errors import CNIError

log = logging.getLogger(__name__)
PodLookup = Callable[[str, str], dict[str, Any] | None]
CONFIG_SOURCE = "kubernetes.io/config.source"  # "api" for pods made through the API; "file"/"http" for static
CONFIG_MIRROR = "kubernetes.io/config.mirror"  # on a static pod's mirror: its config hash (= the static UID)


def is_mirror_pod(obj: dict[str, Any]) -> bool:
    """The API's view of a static pod: kubelet's mirror, with a UID of its own."""
    annotations = (obj.get("metadata") or {}).get("annotations") or {}
    return CONFIG_MIRROR in annotations or annotations.get(CONFIG_SOURCE, "api") != "api"


def attachment_is_live(entry: CacheEntry, pod: PodLookup) -> bool | None:
    """True/False when the entry names its pod; None when it cannot be judged. A pod of the
    same namespace and name with another UID is a recreated pod (False), unless it is a
    static pod's mirror: kubelet passes the static pod's own UID, never the mirror's (True)."""
    args = dict(entry.cni_args)
    ns, name = args.get("K8S_POD_NAMESPACE"), args.get("K8S_POD_NAME")
    if not ns or not name:
        return None
    obj = pod(ns, name)
    if obj is None:
        return False
    uid = args.get("K8S_POD_UID")
    return not uid or (obj.get("metadata") or {}).get("uid") == uid or is_mirror_pod(obj)


def sweep_detached_links() -> list[str]:
    """Delete host veths a DEL detached for the reaper but a crash kept it from deleting
    (marked links, see :mod:`metacni.kernel.reaper`). Errors are logged, not raised."""
    try:
        with rtnl() as ipr:
            return reaper.sweep(ipr)
    except OSError:
        log.exception("GC: sweeping detached links failed")
        return []


def collect(runner: ChainRunner, cache: ResultCache, pod: PodLookup, grace: float = 60.0) -> int:
    """One pass; returns how many attachments were reclaimed. Errors are logged, not raised."""
    sweep_detached_links()
    now = time.time()
    by_network: dict[str, list[CacheEntry]] = {}
    for entry in cache.entries():
        by_network.setdefault(entry.network_name, []).append(entry)
    reclaimed = 0
    for network, entries in sorted(by_network.items()):
        valid: list[tuple[str, str]] = []
        stale = 0
        for entry in entries:
            live = attachment_is_live(entry, pod)
            try:
                young = now - os.stat(cache.path(network, entry.container_id, entry.ifname)).st_mtime < grace
            except FileNotFoundError:
                continue
            if live is False and not young and not _sandbox_alive(entry):
                stale += 1
            else:
                valid.append((entry.container_id, entry.ifname))
        if not stale:
            continue
        newest = max(entries, key=lambda e: _mtime(cache.path(network, e.container_id, e.ifname)))
        try:
            net = network_list_from_bytes(newest.config, f"cached config of {network}")
        except CNIError as exc:
            log.warning("GC skips network %s: its cached config is unusable: %s", network, exc)
            continue
        try:
            runner.gc(net, valid)
        except Exception as exc:  # the next networks are still collected
            log.warning("GC of network %s had errors: %s", network, exc)
        left = {(e.container_id, e.ifname) for e in cache.entries(network)}
        reclaimed += sum(1 for e in entries if (e.container_id, e.ifname) not in left)
    return reclaimed


def _sandbox_alive(entry: CacheEntry) -> bool:
    """The attachment's network namespace still exists: its pod is running on this node, so GC
    keeps it even though the API no longer shows the pod (see the module docstring)."""
    if not netns.is_netns(entry.netns):
        return False
    log.info("GC keeps an attachment whose pod the API does not show: its network namespace still exists",
             extra={"network": entry.network_name, "container": entry.container_id, "ifname": entry.ifname,
                    "netns": entry.netns})
    return True


def _mtime(path: os.PathLike[str] | str) -> float:
    try:
        return os.stat(path).st_mtime
    except FileNotFoundError:
        return 0.0


class GCLoop:
    def __init__(self, run_once: Callable[[], int], period: float) -> None:
        self._run_once = run_once
        self.period = period
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="gc", daemon=True)

    def start(self) -> None:
        if self.period > 0:
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _loop(self) -> None:
        while not self._stop.wait(self.period):
            try:
                n = self._run_once()
                if n:
                    log.info("periodic GC reclaimed attachments", extra={"reclaimed": n})
            except Exception:
                log.exception("periodic GC failed")
