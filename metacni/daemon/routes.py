"""host-gw reachability: a route to every other node's pod CIDR via that node's InternalIP.

Routes the daemon installs carry a dedicated rtnetlink protocol number (default 201), and the
reconciler only ever lists, replaces or deletes routes with that number, so routes made by the
administrator, the primary CNI or the kernel are never touched. A destination already routed
by someone else is left alone (and logged), not replaced.
"""

from __future__ import annotations

import functools
import ipaddress
import logging
import socket
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network
from typing import Any

from metacni.kernel import sysctl
from metacni.kernel.netns import enter

from .rtbatch import RTN_UNICAST, RouteSocket

log = logging.getLogger(__name__)
Net = IPv4Network | IPv6Network
Addr = IPv4Address | IPv6Address


@dataclass
class ReconcileStats:
    added: int = 0
    replaced: int = 0
    deleted: int = 0
    skipped: int = 0
    owned: int = 0


def desired_routes(nodes: Iterable[dict[str, Any]], self_name: str) -> dict[Net, Addr]:
    """pod CIDR → next hop for every other node with an InternalIP of the CIDR's family."""
    out: dict[Net, Addr] = {}
    for node in nodes:
        name = (node.get("metadata") or {}).get("name")
        if not name or name == self_name:
            continue
        spec = node.get("spec") or {}
        cidrs = spec.get("podCIDRs") or ([spec["podCIDR"]] if spec.get("podCIDR") else [])
        ips: dict[int, Addr] = {}
        for addr in (node.get("status") or {}).get("addresses") or []:
            if addr.get("type") != "InternalIP":
                continue
            try:
                ip = _ip(str(addr.get("address", "")))
            except ValueError:
                continue
            ips.setdefault(ip.version, ip)
        for cidr in cidrs:
            try:
                net = _net(str(cidr))
            except ValueError:
                log.warning("node %s has an invalid pod CIDR %r", name, cidr)
                continue
            if net.version in ips:
                out[net] = ips[net.version]
    return out


@functools.lru_cache(maxsize=1 << 16)
def _ip(text: str) -> Addr:
    return ipaddress.ip_address(text)


@functools.lru_cache(maxsize=1 << 16)
def _net(text: str) -> Net:
    """Parsing thousands of CIDRs on every pass is most of a no-op reconciliation; memoise it."""
    return ipaddress.ip_network(text, strict=False)


def own_cidrs(nodes: Iterable[dict[str, Any]], self_name: str) -> set[Net]:
    for node in nodes:
        if (node.get("metadata") or {}).get("name") == self_name:
            spec = node.get("spec") or {}
            cidrs = spec.get("podCIDRs") or ([spec["podCIDR"]] if spec.get("podCIDR") else [])
            return {ipaddress.ip_network(c, strict=False) for c in cidrs}
    return set()


def reconcile(rs: RouteSocket, want: dict[Net, Addr], proto: int) -> ReconcileStats:
    """Make the main table's routes of protocol ``proto`` exactly ``want`` (one dump per family,
    then the changes in batches)."""
    stats = ReconcileStats()
    owned: dict[Net, Addr | None] = {}
    foreign: set[Net] = set()
    for family in (socket.AF_INET, socket.AF_INET6):
        for route in rs.dump(family):
            if route.type != RTN_UNICAST:
                continue
            if route.proto == proto:
                owned[route.dst] = route.gateway
            else:
                foreign.add(route.dst)
    changes: list[tuple[str, Net, Addr | None, int]] = []
    for dst, gw in want.items():
        if owned.get(dst) == gw:
            continue
        if dst in foreign and dst not in owned:
            stats.skipped += 1
            log.warning("not routing %s via %s: the destination already has a route of another owner", dst, gw)
            continue
        changes.append(("replace", dst, gw, proto))
        if dst in owned:
            stats.replaced += 1
        else:
            stats.added += 1
    for dst, old_gw in owned.items():
        if dst not in want:
            changes.append(("delete", dst, old_gw, proto))
            stats.deleted += 1
    for err in rs.apply(changes):
        log.warning("route change failed: %s", err.strerror)
        if err.dst in want:
            stats.skipped += 1
            if err.dst in owned:
                stats.replaced -= 1
            else:
                stats.added -= 1
        else:
            stats.deleted -= 1
    stats.owned = len(want) - stats.skipped
    return stats


class RouteReconciler:
    """Reconciles on node changes (``kick``) and every ``period`` seconds, in one thread.

    ``netns``, when set, is entered by that thread (tests run several nodes in one process).
    """

    def __init__(self, nodes: Callable[[], list[dict[str, Any]]], self_name: str, proto: int = 201,
                 period: float = 60.0, netns: str | None = None,
                 on_result: Callable[[ReconcileStats], None] | None = None) -> None:
        self._nodes = nodes
        self.self_name = self_name
        self.proto = proto
        self.period = period
        self.netns = netns
        self._on_result = on_result
        self._kick = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="routes", daemon=True)
        self.generation = 0
        self._cond = threading.Condition()

    def start(self) -> None:
        self._thread.start()

    def kick(self) -> None:
        self._kick.set()

    def stop(self) -> None:
        self._stop.set()
        self._kick.set()
        if self._thread.is_alive():
            self._thread.join(5)

    def wait_generation(self, generation: int, timeout: float) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: self.generation >= generation, timeout)

    def _run(self) -> None:
        if self.netns:
            with enter(self.netns):
                self._loop()
        else:
            self._loop()

    def _loop(self) -> None:
        try:
            sysctl.enable_forwarding(4)
            sysctl.enable_forwarding(6)
        except OSError as exc:
            log.warning("cannot enable IP forwarding: %s", exc)
        with RouteSocket() as rs:
            while not self._stop.is_set():
                self._kick.clear()
                try:
                    stats = reconcile(rs, desired_routes(self._nodes(), self.self_name), self.proto)
                    if stats.added or stats.replaced or stats.deleted:
                        log.info("node routes reconciled", extra=vars(stats))
                    if self._on_result is not None:
                        self._on_result(stats)
                except Exception:
                    log.exception("route reconciliation failed")
                with self._cond:
                    self.generation += 1
                    self._cond.notify_all()
                self._kick.wait(self.period)
