"""Routes through rtnetlink, with the CNI 1.1 route attributes (mtu, advmss, table, ...)."""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network
from typing import Any

from .rtnl import EEXIST, IPRoute, NetlinkError, is_errno

RT_TABLE_MAIN = 254


@dataclass(frozen=True)
class RouteSpec:
    """One route to install; ``dst`` is a network (host bits are masked off, as the kernel does)."""

    dst: IPv4Network | IPv6Network
    gw: IPv4Address | IPv6Address | None = None
    priority: int | None = None
    table: int | None = None
    scope: int | None = None
    mtu: int | None = None
    advmss: int | None = None


def add_route(ipr: IPRoute, oif: int, route: RouteSpec) -> bool:
    """Install ``route`` out of link ``oif``; False when an identical route already exists."""
    kwargs: dict[str, Any] = {
        "dst": str(route.dst),
        "oif": oif,
        "family": socket.AF_INET if route.dst.version == 4 else socket.AF_INET6,
    }
    if route.gw is not None:
        kwargs["gateway"] = str(route.gw)
    if route.priority is not None:
        kwargs["priority"] = route.priority
    if route.table is not None:
        kwargs["table"] = route.table
    if route.scope is not None:
        kwargs["scope"] = route.scope
    metrics = {}
    if route.mtu:
        metrics["RTAX_MTU"] = route.mtu
    if route.advmss:
        metrics["RTAX_ADVMSS"] = route.advmss
    if metrics:
        kwargs["metrics"] = metrics
    try:
        ipr.route("add", **kwargs)
    except NetlinkError as exc:
        if is_errno(exc, EEXIST):
            return False
        raise
    return True


@dataclass(frozen=True)
class InstalledRoute:
    dst: IPv4Network | IPv6Network
    gw: IPv4Address | IPv6Address | None
    table: int


def list_routes(ipr: IPRoute, oif: int) -> list[InstalledRoute]:
    """Unicast routes out of ``oif`` in every table (local/broadcast entries left out)."""
    out: list[InstalledRoute] = []
    for family in (socket.AF_INET, socket.AF_INET6):
        for msg in ipr.get_routes(family=family, oif=oif, table=None):
            if msg["type"] != 1:  # RTN_UNICAST
                continue
            dst = msg.get_attr("RTA_DST") or ("0.0.0.0" if family == socket.AF_INET else "::")
            gw = msg.get_attr("RTA_GATEWAY")
            table = msg.get_attr("RTA_TABLE") or msg["table"]
            out.append(InstalledRoute(
                dst=ipaddress.ip_network(f"{dst}/{msg['dst_len']}", strict=False),
                gw=ipaddress.ip_address(gw) if gw else None,
                table=int(table),
            ))
    return out
