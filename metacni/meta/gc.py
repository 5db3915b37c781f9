"""CNI GC (spec 1.1) for the meta plugin.

Full teardown of every container whose primary attachment the runtime no longer lists, then GC
of every delegate network with the attachments that remain on it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from metacni.engine.cache import CacheEntry
from metacni.engine.request import Request
from metacni.spec.args import CniArgs
from metacni.spec.config import NetworkList, network_list_from_bytes
from metacni.spec.errors import CNIError, Code

from . import delegate_cache
from .networks import Delegate
from .service import Context, cached_delegates, current_primary, delete_all, remove_device_files

log = logging.getLogger(__name__)


@dataclass
class _Known:
    """What metacni holds for one container: its delegate record (when readable) and the
    result-cache entries of the networks it attached."""

    container_id: str
    record: delegate_cache.CachedAttachments | None = None
    corrupt: delegate_cache.CorruptCache | None = None
    entries: list[CacheEntry] = field(default_factory=list)

    def is_valid(self, valid: set[tuple[str, str]]) -> bool:
        """The runtime lists the meta network's attachments, i.e. our primary's (containerID,
        ifname). Without a readable record the primary's ifname is not certain, so any listed
        attachment of the container keeps it: GC must never tear down a live pod."""
        if self.record is not None:
            return (self.container_id, self.record.delegates[0].ifname) in valid
        if self.entries:
            return any((self.container_id, e.ifname) in valid for e in self.entries)
        return any(cid == self.container_id for cid, _ in valid)


def _known_containers(ctx: Context) -> dict[str, _Known]:
    """Every container metacni knows: a record under cniDir, or an entry in its result cache
    (a record lost or corrupted must not hide an attachment from GC, Multus #891)."""
    known: dict[str, _Known] = {}
    for cid in delegate_cache.container_ids(ctx.cfg.cni_dir):
        k = known[cid] = _Known(cid)
        try:
            k.record = delegate_cache.read(ctx.cfg.cni_dir, cid)
        except delegate_cache.CorruptCache as exc:
            k.corrupt = exc
    for entry in ctx.runner.cache.entries():
        if entry.network_name != ctx.cfg.name:  # the runtime's own entry for the meta network
            known.setdefault(entry.container_id, _Known(entry.container_id)).entries.append(entry)
    return known


def _gc_request(request: Request, k: _Known) -> Request:
    """A DEL request for a stale container, rebuilt from what was stored at ADD (netns,
    CNI_ARGS), as libcni's GC does from its cache; GC itself carries no attachment."""
    from dataclasses import replace

    netns = k.record.netns if k.record else next((e.netns for e in k.entries if e.netns), "")
    primary = k.record.delegates[0] if k.record else None
    ifname = primary.ifname if primary else "eth0"
    cached = next((e for e in k.entries if e.ifname == ifname), k.entries[0] if k.entries else None)
    if cached is not None and cached.cni_args:
        args = cached.args
    elif k.record and k.record.pod_name:
        args = CniArgs([("K8S_POD_NAMESPACE", k.record.pod_namespace), ("K8S_POD_NAME", k.record.pod_name),
                        ("K8S_POD_INFRA_CONTAINER_ID", k.container_id)])
    else:
        args = CniArgs()
    inv = replace(request.invocation, command="DEL", container_id=k.container_id, netns=netns, ifname=ifname,
                  args=args)
    return Request(invocation=inv, config=request.config, invoker=request.invoker)


def _teardown(request: Request, k: _Known, primary_name: str) -> list[Delegate]:
    """The full DEL of a stale container: every network of its record plus any cached one the
    record lacks, in reverse ADD order; the record goes only when every DEL succeeded, so the
    next GC (or DEL) retries the rest. Returns the delegates torn down."""
    sub = Context(_gc_request(request, k))
    delegates = list(k.record.delegates) if k.record else []
    covered = {(d.net.name, d.ifname) for d in delegates}
    primary_ifname = sub.request.ifname if k.record else next(
        (e.ifname for e in k.entries if e.network_name == primary_name), "eth0")
    for d, _ in cached_delegates(sub, k.container_id, primary_ifname):
        if (d.net.name, d.ifname) not in covered:
            d.primary = d.primary and k.record is None  # with a record, its first is the primary
            delegates.append(d)
    log.warning("%s (container %s): not among the runtime's valid attachments; GC removes %s", sub.who,
                k.container_id, ", ".join(f"{d.label} ({d.ifname})" for d in delegates) or "its record")
    delete_all(sub, delegates, strict=True)
    remove_device_files(sub, delegates)
    if k.corrupt is not None:
        delegate_cache.quarantine(k.corrupt.path)
    delegate_cache.remove(sub.cfg.cni_dir, k.container_id)
    return delegates


def gc(request: Request) -> None:
    """CNI GC (spec 1.1): tear down every container metacni knows whose primary attachment the
    runtime no longer lists, then pass GC on to every delegate network with the attachments
    that remain on it, so IPAM and firewall plugins drop what no live attachment holds (a
    crash mid-ADD/DEL, a DEL never sent). Continues past errors and reports them together."""
    ctx = Context(request)
    valid = set(request.valid_attachments)
    errors: list[str] = []
    try:
        primary_label, primary = current_primary(ctx)
    except CNIError as exc:
        errors.append(f"primary network: {exc}")
        primary_label, primary = "", None
    known = _known_containers(ctx)
    held: dict[str, set[tuple[str, str]]] = {}  # network name -> attachments left in place
    nets: dict[str, NetworkList] = {primary.name: primary} if primary else {}
    stale: list[_Known] = []

    def hold(k: _Known) -> None:
        for d in k.record.delegates if k.record else []:
            held.setdefault(d.net.name, set()).add((k.container_id, d.ifname))
            nets.setdefault(d.net.name, d.net)
        for e in k.entries:
            held.setdefault(e.network_name, set()).add((k.container_id, e.ifname))

    for _, k in sorted(known.items()):
        if k.is_valid(valid):
            hold(k)
        else:
            stale.append(k)
    failed: list[_Known] = []
    for k in stale:
        try:
            for d in _teardown(request, k, primary.name if primary else ""):
                nets.setdefault(d.net.name, d.net)
        except Exception as exc:  # not only CNIError: the other containers are still collected
            errors.append(f"container {k.container_id}: {exc}")
            failed.append(k)
    for k in failed:
        # Half torn down: the next GC retries it whole; its networks' GC must not release
        # leases or rules out from under the attachments still in place.
        hold(k)
    for k in known.values():  # networks known only from a cache entry
        for e in k.entries:
            if e.network_name not in nets:
                try:
                    nets[e.network_name] = network_list_from_bytes(e.config, f"cached config of {e.network_name}")
                except CNIError as exc:
                    errors.append(f"network {e.network_name}: {exc}")
    for name in sorted(nets, key=lambda n: (primary is None or n != primary.name, n)):
        keep = sorted(held.get(name, set()) | valid)
        try:
            ctx.runner.gc(nets[name], keep)
        except Exception as exc:  # every network gets its GC
            label = primary_label if primary and name == primary.name else name
            errors.append(f"network {label}: {exc}")
    if errors:
        raise CNIError(Code.UNKNOWN, "garbage collection had errors", "; ".join(errors))


