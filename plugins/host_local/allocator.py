"""Allocation: one address per range set, all under one flock, all-or-nothing."""

from __future__ import annotations

from dataclasses import dataclass

from metacni.plugin import CNIError, Code

from .config import IPAMConfig, invalid
from .ranges import IPAddress, Range, candidates, describe, range_for
from .store import Store


@dataclass(frozen=True)
class Allocation:
    ip: IPAddress
    range: Range

    @property
    def cidr(self) -> str:
        return f"{self.ip}/{self.range.subnet.prefixlen}"


def allocate(cfg: IPAMConfig, store: Store, container_id: str, ifname: str) -> list[Allocation]:
    """Lease one address from each range set for (container id, ifname).

    The caller holds the store lock. Requested addresses are consumed by the first set that
    contains them. On any failure the addresses leased by this call -- and only those, never
    an existing attachment's -- are released before the error is raised.
    """
    pending = list(cfg.requested)
    done: list[Allocation] = []
    existing = store.find(container_id, ifname)
    try:
        for idx, rs in enumerate(cfg.range_sets):
            for lease in existing:
                if range_for(rs, lease.ip) is not None:
                    raise CNIError(Code.INTERNAL, "duplicate allocation",
                                   f"{lease.ip} has been allocated to {container_id} (ifname {ifname}) on "
                                   f"network {cfg.network!r}, duplicate allocation is not allowed")
            want = next((ip for ip in pending if range_for(rs, ip) is not None), None)
            if want is not None:
                pending.remove(want)
                done.append(_reserve_requested(cfg, store, idx, want, container_id, ifname))
            else:
                done.append(_reserve_next(cfg, store, idx, container_id, ifname))
        if pending:
            raise invalid(cfg.network, "requested IPs outside every range set: "
                                       + ", ".join(str(ip) for ip in pending))
    except BaseException:
        for alloc in done:
            store.release(alloc.ip)
        raise
    return done


def _reserve_requested(cfg: IPAMConfig, store: Store, idx: int, ip: IPAddress,
                       container_id: str, ifname: str) -> Allocation:
    r = range_for(cfg.range_sets[idx], ip)
    assert r is not None
    if ip == r.gateway:
        raise invalid(cfg.network, f"requested ip {ip} is the gateway of range {r}")
    if not store.reserve(ip, container_id, ifname, idx):
        raise CNIError(Code.INTERNAL, "requested IP address not available",
                       f"{ip} is already leased in range set {describe(cfg.range_sets[idx])} "
                       f"of network {cfg.network!r}")
    return Allocation(ip, r)


def _reserve_next(cfg: IPAMConfig, store: Store, idx: int, container_id: str, ifname: str) -> Allocation:
    rs = cfg.range_sets[idx]
    for ip, r in candidates(rs, store.last_reserved(idx)):
        if store.reserve(ip, container_id, ifname, idx):
            return Allocation(ip, r)
    raise CNIError(Code.INTERNAL, "no IP addresses available",
                   f"no IP addresses available in range set {describe(rs)} of network {cfg.network!r}")
