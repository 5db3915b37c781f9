"""Per-container record of the delegates used at ADD, so DEL needs neither the pod nor its NADs.

``<cniDir>/<containerID>``: written atomically (temp, rename) BEFORE the first
delegate runs, so a crash mid-ADD still leaves DEL a complete list. A file that cannot be
decoded, or decodes with the wrong types (``"delegates": "x"``, ``"pod": 5``), is
:class:`CorruptCache`, never "nothing to delete" (Multus #948/#1087); callers quarantine it
and go on from the result cache, so it never fails DEL or GC forever.
"""

from __future__ import annotations

import binascii
import json
import os
from dataclasses import dataclass, field
from logging import getLogger
from pathlib import Path
from typing import TYPE_CHECKING

from metacni.engine import cache
from metacni.engine.cache import atomic_write, read_if_present, typed  # typed: CorruptEntry is a ValueError
from metacni.spec import naming, safejson
from metacni.spec.config import NetworkList, network_list_from_bytes
from metacni.spec.errors import CNIError, Code

from .annotations import NetworkSelection
from .networks import Delegate

if TYPE_CHECKING:
    from typing import Any

log = getLogger(__name__)
KIND = "metacniDelegatesV1"


class CorruptCache(CNIError):
    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(Code.IO_FAILURE, "corrupt metacni delegate cache", f"{path}: {reason}")
        self.path = path


@dataclass
class CachedAttachments:
    container_id: str
    netns: str
    pod_namespace: str
    pod_name: str
    delegates: list[Delegate] = field(default_factory=list)


def path(cni_dir: str | os.PathLike[str], container_id: str) -> Path:
    """Where ``container_id``'s record is; the ID is checked to be a safe file name first."""
    naming.check_container_id(container_id)
    return Path(cni_dir, container_id)


def write(cni_dir: str | os.PathLike[str], record: CachedAttachments) -> None:
    data = {
        "kind": KIND,
        "containerId": record.container_id,
        "netns": record.netns,
        "pod": {"namespace": record.pod_namespace, "name": record.pod_name},
        "delegates": [{
            "label": d.label,
            "ifname": d.ifname,
            "primary": d.primary,
            "config": binascii.b2a_base64(d.net.raw, newline=False).decode(),
            "source": d.net.source,
            "capabilityArgs": d.capability_args,
            **({"selection": d.selection.to_json()} if d.selection else {}),
        } for d in record.delegates],
    }
    atomic_write(path(cni_dir, record.container_id), json.dumps(data).encode(), durable=False)


def read(cni_dir: str | os.PathLike[str], container_id: str) -> CachedAttachments | None:
    """The record, None when there is none; CorruptCache when it exists but is unusable."""
    where = path(cni_dir, container_id)
    try:
        raw = read_if_present(where)
    except OSError as exc:
        raise CorruptCache(where, exc.strerror or str(exc)) from None
    if raw is None:
        return None
    try:
        data = safejson.loads(raw)
        if not isinstance(data, dict) or data.get("kind") != KIND:
            raise ValueError(f"not a {KIND} record")
        if data.get("containerId") != container_id:
            raise ValueError(f"records container {data.get('containerId')!r}")
        items = typed(data, "delegates", list)
        delegates = [_delegate(item) for item in items]
        if not delegates or not delegates[0].primary:
            raise ValueError("no primary delegate")
        pod = typed(data, "pod", dict, {})
        return CachedAttachments(container_id=container_id, netns=typed(data, "netns", str, ""),
                                 pod_namespace=typed(pod, "namespace", str, ""), pod_name=typed(pod, "name", str, ""),
                                 delegates=delegates)
    except (ValueError, KeyError, TypeError, AttributeError, CNIError) as exc:
        reason = f"{type(exc).__name__}: {exc}" if raw.strip() else "empty file"
        raise CorruptCache(where, reason) from None


def _delegate(item: Any) -> Delegate:
    if not isinstance(item, dict):
        raise ValueError(f"a delegate must be a JSON object, got {type(item).__name__}")
    raw = binascii.a2b_base64(typed(item, "config", str), strict_mode=True)
    net: NetworkList = network_list_from_bytes(raw, typed(item, "source", str, ""))
    ifname = typed(item, "ifname", str)
    naming.check_ifname(ifname, "cached ifname")
    sel = typed(item, "selection", dict, None)
    return Delegate(label=typed(item, "label", str), net=net, ifname=ifname, primary=typed(item, "primary", bool),
                    selection=NetworkSelection.from_json(sel) if sel is not None else None,
                    capability_args=dict(typed(item, "capabilityArgs", dict, {})))


def remove(cni_dir: str | os.PathLike[str], container_id: str) -> None:
    path(cni_dir, container_id).unlink(missing_ok=True)


def quarantine(record: str | os.PathLike[str]) -> Path | None:
    """Move a corrupt record aside to ``<cniDir>/corrupt/`` (kept for the operator, out of the
    way of the next ADD, DEL and GC); where it went, None when it was already gone."""
    try:
        return cache.quarantine(record)
    except FileNotFoundError:
        return None


def container_ids(cni_dir: str | os.PathLike[str]) -> list[str]:
    """Containers with a record (GC)."""
    try:
        entries = sorted(Path(cni_dir).iterdir())
    except FileNotFoundError:
        return []
    return [p.name for p in entries if not p.name.startswith(".") and naming.container_id_problem(p.name) is None
            and p.is_file()]
