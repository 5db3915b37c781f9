"""Routes through rtnetlink, with the CNI 1.1 route attributes (mtu, advmss, table, ...)."""

from __future__ import annotations

import errno
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network

from metacni.netlink import rtnl as nl
from metacni.netlink.rtnl import EEXIST, RT_TABLE_MAIN, NetlinkError, RouteMsg, Rtnl, is_errno
from metacni.spec.errors import CNIError, Code

log = logging.getLogger(__name__)

__all__ = ["RT_TABLE_MAIN", "InstalledRoute", "RouteMsg", "RouteSpec", "add_route", "add_route_request",
           "delete_route", "dump_routes", "is_local_address", "is_node_address", "list_routes", "node_addresses",
           "overlapping_route", "route_get"]


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


def add_route_request(oif: int, route: RouteSpec) -> nl.Request:
    """The RTM_NEWROUTE of :func:`add_route`, for callers batching it with other requests."""
    return nl.route(nl.RTM_NEWROUTE, RouteMsg(
        dst=route.dst, gateway=route.gw, oif=oif, table=route.table or RT_TABLE_MAIN, scope=route.scope,
        priority=route.priority, mtu=route.mtu, advmss=route.advmss))


def add_route(ipr: Rtnl, oif: int, route: RouteSpec) -> bool:
    """Install ``route`` out of link ``oif``; False when an identical route already exists."""
    try:
        ipr.request(add_route_request(oif, route), f"add route {route.dst}")
    except NetlinkError as exc:
        if is_errno(exc, EEXIST):
            return False
        raise
    return True


def delete_route(ipr: Rtnl, route: RouteMsg) -> None:
    ipr.request(nl.route(nl.RTM_DELROUTE, route), f"delete route {route.dst}")


def route_get(ipr: Rtnl, dst: IPv4Address | IPv6Address) -> RouteMsg | None:
    """The route the kernel would use towards ``dst`` (``ip route get``); None if unreachable."""
    try:
        replies = ipr.request(nl.getroute(dst), f"route get {dst}")
    except NetlinkError as exc:
        if is_errno(exc, errno.ENETUNREACH, errno.EHOSTUNREACH):
            return None
        raise
    return nl.parse_route(replies[0]) if replies else None


def is_local_address(ipr: Rtnl, address: IPv4Address | IPv6Address) -> bool:
    """Whether ``address`` is one of this network namespace's own (the kernel would deliver it
    locally: a ``local`` route, as ``ip route get`` shows)."""
    found = route_get(ipr, address)
    return found is not None and found.type == nl.RTN_LOCAL


def is_node_address(address: IPv4Address | IPv6Address) -> bool:
    """:func:`is_local_address` on a socket of its own. When the kernel cannot say, CNIError code
    11 (try again later): the tenant checks asking must not take "unknown" for "not the node's"."""
    try:
        with nl.rtnl() as ipr:
            return is_local_address(ipr, address)
    except (NetlinkError, OSError) as exc:
        raise _unknown(f"whether {address} is an address of this node", exc) from None


def _unknown(what: str, exc: BaseException) -> CNIError:
    return CNIError(Code.TRY_AGAIN_LATER, "cannot read the node's addresses",
                    f"the kernel could not tell {what}: {exc}")


def dump_routes(ipr: Rtnl, version: int) -> list[RouteMsg]:
    """Every route of one family, all tables."""
    out = []
    for payload in ipr.dump(nl.dumproutes(version), "dump routes"):
        r = nl.parse_route(payload)
        if r is not None:
            out.append(r)
    return out


def overlapping_route(routes: Iterable[RouteMsg], net: IPv4Network | IPv6Network,
                      exclude_oif: int | None = None) -> RouteMsg | None:
    """The first of ``routes`` that ``net`` would take traffic from (design 1408): a unicast or
    local route of ``net``'s family that overlaps it, default routes aside (every subnet overlaps
    those) and, with ``exclude_oif``, routes out of that interface aside."""
    for r in routes:
        if (r.dst.prefixlen and r.type in (nl.RTN_UNICAST, nl.RTN_LOCAL)
                and (exclude_oif is None or r.oif != exclude_oif)
                and r.dst.version == net.version and r.dst.overlaps(net)):
            return r
    return None


def node_addresses() -> set[IPv4Address | IPv6Address]:
    """Every address of this network namespace (its ``local`` routes), on a socket of its own;
    CNIError code 11 when the kernel cannot say (see :func:`is_node_address`)."""
    try:
        with nl.rtnl() as ipr:
            return {r.dst.network_address for version in (4, 6) for r in dump_routes(ipr, version)
                    if r.type == nl.RTN_LOCAL and r.dst.prefixlen == r.dst.max_prefixlen}
    except (NetlinkError, OSError) as exc:
        raise _unknown("the addresses of this node", exc) from None


@dataclass(frozen=True)
class InstalledRoute:
    dst: IPv4Network | IPv6Network
    gw: IPv4Address | IPv6Address | None
    table: int


def list_routes(ipr: Rtnl, oif: int) -> list[InstalledRoute]:
    """Unicast routes out of ``oif`` in every table (local/broadcast entries left out)."""
    return [InstalledRoute(dst=r.dst, gw=r.gateway, table=r.table)
            for version in (4, 6) for r in dump_routes(ipr, version)
            if r.type == nl.RTN_UNICAST and r.oif == oif]


