"""network-status that a daemon answered for but never wrote (it stopped first): found again
from the delegate records at start (docs/design/1506-network-status-after-the-answer.md).

A recorded attachment whose sandbox still exists (its network namespace is there) and whose pod,
same namespace and name, carries no network-status at all gets the list its record and result
cache describe. A pod that has one is left alone: it may be newer than the record (a dynamic
attachment written by Multus' controller), and the daemon never overwrites what it cannot date.
Of several records for one pod (a sandbox re-created before the old one's DEL), the newest
record's list is submitted last, so a writer that keeps the newest write per pod uses it.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from logging import getLogger
from typing import Any

from metacni.engine.cache import ResultCache
from metacni.kernel import netns
from metacni.spec.results import Result, parse_result

from . import delegate_cache, network_status
from .kube import NETWORK_STATUS
from .networks import Delegate

log = getLogger(__name__)
PodLookup = Callable[[str, str], dict[str, Any] | None]


@dataclass(frozen=True)
class MissingStatus:
    namespace: str
    name: str
    uid: str  # the pod's, as the lookup has it
    container_id: str
    entries: list[dict[str, Any]]


def record_status(record: delegate_cache.CachedAttachments, cache: ResultCache,
                  info_dir: str | os.PathLike[str] | None) -> list[dict[str, Any]]:
    """The network-status list of every recorded attachment with a cached result."""
    attached: list[tuple[Delegate, Result]] = []
    for d in record.delegates:
        entry = cache.read(d.net.name, record.container_id, d.ifname)
        if entry is not None and entry.result:
            attached.append((d, parse_result(entry.result)))
    return network_status.network_status(attached, record.container_id, info_dir)


def repair_missing(cni_dir: str | os.PathLike[str], info_dir: str | os.PathLike[str] | None, pod: PodLookup,
                   submit: Callable[[MissingStatus], object],
                   hold: Callable[[str], AbstractContextManager[object]] | None = None) -> int:
    """``submit`` the status of every recorded attachment whose live sandbox's pod has none,
    oldest record first; returns how many. ``hold(container_id)`` (the daemon's per-container
    lock) is held from reading a record to submitting its status, so an ADD of that container
    running meanwhile never sees its newer list replaced by one built from its unfinished record."""
    cache = ResultCache(cni_dir)
    records: list[tuple[int, str]] = []
    for cid in delegate_cache.container_ids(cni_dir):
        try:
            records.append((delegate_cache.path(cni_dir, cid).stat().st_mtime_ns, cid))
        except OSError:
            continue  # DELeted meanwhile
    done = 0
    for _, cid in sorted(records):
        with hold(cid) if hold is not None else contextlib.nullcontext():
            missing = _missing(cni_dir, cid, info_dir, pod, cache)
            if missing is not None:
                submit(missing)
                done += 1
    return done


def _missing(cni_dir: str | os.PathLike[str], cid: str, info_dir: str | os.PathLike[str] | None, pod: PodLookup,
             cache: ResultCache) -> MissingStatus | None:
    try:
        record = delegate_cache.read(cni_dir, cid)
    except delegate_cache.CorruptCache as exc:
        log.warning("network-status repair skips %s: %s", cid, exc.details)
        return None
    if record is None or not record.pod_name or not netns.is_netns(record.netns):
        return None
    obj = pod(record.pod_namespace, record.pod_name)
    meta = (obj or {}).get("metadata") or {}
    if obj is None or NETWORK_STATUS in (meta.get("annotations") or {}):
        return None
    return MissingStatus(record.pod_namespace, record.pod_name, str(meta.get("uid") or ""), cid,
                         record_status(record, cache, info_dir))


__all__ = ["MissingStatus", "record_status", "repair_missing"]
