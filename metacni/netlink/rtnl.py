"""rtnetlink: links (RTM_*LINK with IFLA_LINKINFO, veth peers, bridge-port flags), addresses
(RTM_*ADDR) and routes (RTM_*ROUTE with metrics), and :class:`Rtnl`, the socket they go through.

Encoders return :data:`~.core.Request` tuples for :meth:`~.core.Socket.request`,
:meth:`~.core.Socket.batch` and :meth:`~.core.Socket.dump`; decoders take a reply payload.
Only what the pod data path and the daemon's node routes speak; pyroute2 covers the rare rest
(bridge VLAN filtering: :mod:`metacni.kernel.iproute`). Tested by round-trips against the
kernel and pyroute2 (tests/netlink/).

Layout reminders (native-endian): ifinfomsg ``family u8, pad, type u16, index i32, flags u32,
change u32``; ifaddrmsg ``family, prefixlen, flags, scope u8, index u32``; rtmsg ``family,
dst_len, src_len, tos, table, protocol, scope, type u8, flags u32``.
"""

from __future__ import annotations

import functools
import ipaddress
import socket
import struct
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Interface, IPv4Network, IPv6Address, IPv6Interface, IPv6Network

from .core import (
    EADDRNOTAVAIL,
    EEXIST,
    ENODEV,
    ENOENT,
    EOPNOTSUPP,
    ESRCH,
    NETLINK_ROUTE,
    NLM_F_CREATE,
    NLM_F_DUMP,
    NLM_F_EXCL,
    NLM_F_REPLACE,
    NetlinkError,
    Request,
    Socket,
    attr,
    get_str,
    get_u32,
    is_errno,
    nested,
    parse_attrs,
    string,
    u8,
    u32,
)

__all__ = ["EADDRNOTAVAIL", "EEXIST", "ENODEV", "ENOENT", "EOPNOTSUPP", "ESRCH", "AddrInfo", "LinkInfo",
           "LinkSpec", "NetlinkError", "Request", "RouteMsg", "Rtnl", "is_errno", "rtnl"]

# ---------------------------------------------------------------------- constants
RTM_NEWLINK, RTM_DELLINK, RTM_GETLINK, RTM_SETLINK = 16, 17, 18, 19
RTM_NEWADDR, RTM_DELADDR, RTM_GETADDR = 20, 21, 22
RTM_NEWROUTE, RTM_DELROUTE, RTM_GETROUTE = 24, 25, 26

IFLA_ADDRESS, IFLA_BROADCAST, IFLA_IFNAME, IFLA_MTU, IFLA_LINK = 1, 2, 3, 4, 5
IFLA_MASTER, IFLA_PROTINFO, IFLA_OPERSTATE, IFLA_LINKINFO = 10, 12, 16, 18
IFLA_IFALIAS, IFLA_GROUP, IFLA_NET_NS_FD, IFLA_EXT_MASK, IFLA_LINK_NETNSID = 20, 27, 28, 29, 37
IFLA_INFO_KIND, IFLA_INFO_DATA, IFLA_INFO_SLAVE_KIND, IFLA_INFO_SLAVE_DATA = 1, 2, 4, 5
VETH_INFO_PEER = 1
IFLA_BRPORT_MODE, IFLA_BRPORT_ISOLATED = 4, 33  # hairpin is "mode"
RTEXT_FILTER_SKIP_STATS = 1 << 3  # IFLA_EXT_MASK: leave the ~1 KiB of counters out of replies

IFA_ADDRESS, IFA_LOCAL, IFA_BROADCAST, IFA_FLAGS = 1, 2, 4, 8
IFA_F_NODAD = 0x02

RTA_DST, RTA_OIF, RTA_GATEWAY, RTA_PRIORITY, RTA_METRICS, RTA_TABLE = 1, 4, 5, 6, 8, 15
RTAX_MTU, RTAX_ADVMSS = 2, 8
RTN_UNICAST = 1
RTN_LOCAL = 2
RTPROT_BOOT = 3
RT_SCOPE_UNIVERSE, RT_SCOPE_LINK = 0, 253
RT_TABLE_MAIN = 254

IFF_UP, IFF_PROMISC = 0x1, 0x100
OPERSTATES = ("UNKNOWN", "NOTPRESENT", "DOWN", "LOWERLAYERDOWN", "TESTING", "DORMANT", "UP")

IFINFOMSG = struct.Struct("=BxHiII")
IFADDRMSG = struct.Struct("=BBBBI")
RTMSG = struct.Struct("=BBBBBBBBI")
_I32 = struct.Struct("=i")

IPAddress = IPv4Address | IPv6Address
IPNetwork = IPv4Network | IPv6Network
IPInterface = IPv4Interface | IPv6Interface


def family_of(version: int) -> int:
    return socket.AF_INET if version == 4 else socket.AF_INET6


def mac_bytes(mac: str) -> bytes:
    return bytes.fromhex(mac.replace(":", "").replace("-", ""))


def mac_str(raw: bytes) -> str:
    return ":".join(f"{b:02x}" for b in raw)


# ---------------------------------------------------------------------- the socket
class Rtnl(Socket):
    """An rtnetlink socket (NETLINK_ROUTE) in the calling thread's netns."""

    def __init__(self) -> None:
        super().__init__(NETLINK_ROUTE)

    def __enter__(self) -> Rtnl:
        return self


@contextmanager
def rtnl() -> Iterator[Rtnl]:
    """An rtnetlink socket in the calling thread's current netns, closed after the block."""
    sock = Rtnl()
    try:
        yield sock
    finally:
        sock.close()


# ---------------------------------------------------------------------- links
@dataclass(frozen=True)
class LinkInfo:
    """The attributes of a link the plugins look at, read from one RTM_GETLINK."""

    index: int
    name: str
    mac: str
    mtu: int
    kind: str
    master: int | None
    flags: int
    operstate: str
    peer_index: int | None  # IFLA_LINK: a veth's peer index (in the peer's netns)
    alias: str = ""
    link_netnsid: int | None = None
    group: int = 0  # IFLA_LINK_NETNSID: where the peer lives, as this netns numbers it

    @property
    def admin_up(self) -> bool:
        return bool(self.flags & IFF_UP)

    @property
    def promisc(self) -> bool:
        return bool(self.flags & IFF_PROMISC)


@dataclass(frozen=True)
class LinkSpec:
    """What RTM_NEWLINK sets: a new link (``kind``) or changes to an existing one.

    ``master=0`` releases the link from its master; ``up``/``promisc`` None leaves the flag
    alone. ``peer`` describes a veth's other end; its ``netns_fd`` says where it is born.
    """

    index: int = 0
    name: str | None = None
    kind: str | None = None
    mtu: int = 0
    mac: str | None = None
    master: int | None = None
    up: bool | None = None
    promisc: bool | None = None
    alias: str | None = None
    group: int | None = None
    peer: LinkSpec | None = None
    netns_fd: int | None = None
    slave_kind: str | None = None  # e.g. "bridge": bridge-port settings by name, in the same request
    slave_data: bytes = b""


def _link_body(spec: LinkSpec) -> bytes:
    flags = change = 0
    if spec.up is not None:
        change |= IFF_UP
        flags |= IFF_UP if spec.up else 0
    if spec.promisc is not None:
        change |= IFF_PROMISC
        flags |= IFF_PROMISC if spec.promisc else 0
    body = IFINFOMSG.pack(socket.AF_UNSPEC, 0, spec.index, flags, change)
    if spec.name:
        body += string(IFLA_IFNAME, spec.name)
    if spec.mtu:
        body += u32(IFLA_MTU, spec.mtu)
    if spec.mac:
        body += attr(IFLA_ADDRESS, mac_bytes(spec.mac))
    if spec.master is not None:
        body += u32(IFLA_MASTER, spec.master)
    if spec.alias is not None:
        body += attr(IFLA_IFALIAS, spec.alias.encode())
    if spec.group is not None:
        body += u32(IFLA_GROUP, spec.group)
    if spec.netns_fd is not None:
        body += u32(IFLA_NET_NS_FD, spec.netns_fd)
    info = b""
    if spec.kind:
        info += string(IFLA_INFO_KIND, spec.kind)
        if spec.peer is not None:
            info += nested(IFLA_INFO_DATA, nested(VETH_INFO_PEER, _link_body(spec.peer)))
    if spec.slave_kind:
        info += string(IFLA_INFO_SLAVE_KIND, spec.slave_kind)
        if spec.slave_data:
            info += nested(IFLA_INFO_SLAVE_DATA, spec.slave_data)
    if info:
        body += nested(IFLA_LINKINFO, info)
    return body


def newlink(spec: LinkSpec, *, create: bool) -> Request:
    """(type, extra flags, body) for an RTM_NEWLINK creating (exclusively) or changing a link."""
    return RTM_NEWLINK, (NLM_F_CREATE | NLM_F_EXCL) if create else 0, _link_body(spec)


def getlink(name: str | None = None, index: int = 0) -> Request:
    body = IFINFOMSG.pack(socket.AF_UNSPEC, 0, index, 0, 0) + u32(IFLA_EXT_MASK, RTEXT_FILTER_SKIP_STATS)
    if name and not index:
        body += string(IFLA_IFNAME, name)
    return RTM_GETLINK, 0, body


def dellink(name: str | None = None, index: int = 0) -> Request:
    body = IFINFOMSG.pack(socket.AF_UNSPEC, 0, index, 0, 0)
    if name and not index:
        body += string(IFLA_IFNAME, name)
    return RTM_DELLINK, 0, body


def delgroup(group: int) -> Request:
    """RTM_DELLINK of every link in ``group`` (IFLA_GROUP): one unregister, one RCU wait."""
    return RTM_DELLINK, 0, IFINFOMSG.pack(socket.AF_UNSPEC, 0, 0, 0, 0) + u32(IFLA_GROUP, group)


def dumplinks() -> Request:
    body = IFINFOMSG.pack(socket.AF_UNSPEC, 0, 0, 0, 0) + u32(IFLA_EXT_MASK, RTEXT_FILTER_SKIP_STATS)
    return RTM_GETLINK, NLM_F_DUMP, body


def brport(index: int, *, hairpin: bool | None = None, isolated: bool | None = None) -> Request:
    """Bridge-port flags on port ``index`` (RTM_SETLINK, AF_BRIDGE, nested IFLA_PROTINFO)."""
    flags = b""
    if hairpin is not None:
        flags += u8(IFLA_BRPORT_MODE, int(hairpin))
    if isolated is not None:
        flags += u8(IFLA_BRPORT_ISOLATED, int(isolated))
    body = IFINFOMSG.pack(socket.AF_BRIDGE, 0, index, 0, 0) + nested(IFLA_PROTINFO, flags)
    return RTM_SETLINK, 0, body


def parse_link(payload: bytes) -> LinkInfo:
    _family, _type, index, flags, _change = IFINFOMSG.unpack_from(payload)
    attrs = parse_attrs(payload, IFINFOMSG.size)
    kind = ""
    if IFLA_LINKINFO in attrs:
        kind = get_str(parse_attrs(attrs[IFLA_LINKINFO]), IFLA_INFO_KIND) or ""
    oper = attrs.get(IFLA_OPERSTATE)
    netnsid = attrs.get(IFLA_LINK_NETNSID)
    return LinkInfo(
        index=index,
        name=get_str(attrs, IFLA_IFNAME) or "",
        mac=mac_str(attrs[IFLA_ADDRESS]) if IFLA_ADDRESS in attrs else "",
        mtu=get_u32(attrs, IFLA_MTU) or 0,
        kind=kind,
        master=get_u32(attrs, IFLA_MASTER),
        flags=flags,
        operstate=OPERSTATES[oper[0]] if oper and oper[0] < len(OPERSTATES) else "UNKNOWN",
        peer_index=get_u32(attrs, IFLA_LINK),
        alias=get_str(attrs, IFLA_IFALIAS) or "",
        link_netnsid=_I32.unpack_from(netnsid)[0] if netnsid and len(netnsid) >= 4 else None,
        group=get_u32(attrs, IFLA_GROUP) or 0,
    )


# ---------------------------------------------------------------------- addresses
def addr(op: int, index: int, address: IPInterface, *, nodad: bool = False) -> Request:
    """RTM_NEWADDR (exclusive create) or RTM_DELADDR of ``address`` with its prefix."""
    prefixlen = address.network.prefixlen
    flags = IFA_F_NODAD if nodad and address.version == 6 else 0
    body = IFADDRMSG.pack(family_of(address.version), prefixlen, flags, RT_SCOPE_UNIVERSE, index)
    raw = address.ip.packed
    body += attr(IFA_LOCAL, raw) + attr(IFA_ADDRESS, raw)
    if op == RTM_NEWADDR and address.version == 4 and prefixlen < 31:
        body += attr(IFA_BROADCAST, address.network.broadcast_address.packed)
    return op, (NLM_F_CREATE | NLM_F_EXCL) if op == RTM_NEWADDR else 0, body


def dumpaddrs(version: int | None = None) -> Request:
    fam = family_of(version) if version else socket.AF_UNSPEC
    return RTM_GETADDR, NLM_F_DUMP, IFADDRMSG.pack(fam, 0, 0, 0, 0)


@dataclass(frozen=True)
class AddrInfo:
    index: int
    address: IPInterface


def parse_addr(payload: bytes) -> AddrInfo | None:
    family, prefixlen, _flags, _scope, index = IFADDRMSG.unpack_from(payload)
    attrs = parse_attrs(payload, IFADDRMSG.size)
    raw = attrs.get(IFA_ADDRESS) or attrs.get(IFA_LOCAL)
    if raw is None or family not in (socket.AF_INET, socket.AF_INET6):
        return None
    return AddrInfo(index=index, address=ipaddress.ip_interface((ipaddress.ip_address(raw), prefixlen)))


# ---------------------------------------------------------------------- routes
@dataclass(frozen=True)
class RouteMsg:
    """A route as RTM_NEWROUTE/RTM_DELROUTE carries it (and as a dump returns it)."""

    dst: IPNetwork
    gateway: IPAddress | None = None
    oif: int | None = None
    table: int = RT_TABLE_MAIN
    proto: int | None = None  # None: RTPROT_BOOT when adding, any protocol when deleting
    scope: int | None = None  # None: link scope without a gateway, universe with one
    type: int = RTN_UNICAST
    priority: int | None = None
    mtu: int | None = None
    advmss: int | None = None


def route(op: int, r: RouteMsg, *, replace: bool = False) -> Request:
    """RTM_NEWROUTE (exclusive, or create-or-replace) or RTM_DELROUTE for ``r``."""
    scope = r.scope if r.scope is not None else (RT_SCOPE_UNIVERSE if r.gateway is not None or op == RTM_DELROUTE
                                                 else RT_SCOPE_LINK)
    body = RTMSG.pack(family_of(r.dst.version), r.dst.prefixlen, 0, 0, r.table if r.table < 256 else 0,
                      (RTPROT_BOOT if op == RTM_NEWROUTE else 0) if r.proto is None else r.proto, scope, r.type, 0)
    if r.dst.prefixlen:
        body += attr(RTA_DST, r.dst.network_address.packed)
    if r.gateway is not None:
        body += attr(RTA_GATEWAY, r.gateway.packed)
    if r.oif:
        body += u32(RTA_OIF, r.oif)
    if r.priority is not None:
        body += u32(RTA_PRIORITY, r.priority)
    body += u32(RTA_TABLE, r.table)
    metrics = b""
    if r.mtu:
        metrics += u32(RTAX_MTU, r.mtu)
    if r.advmss:
        metrics += u32(RTAX_ADVMSS, r.advmss)
    if metrics:
        body += attr(RTA_METRICS, metrics)
    flags = NLM_F_CREATE | (NLM_F_REPLACE if replace else NLM_F_EXCL) if op == RTM_NEWROUTE else 0
    return op, flags, body


def getroute(dst: IPAddress) -> Request:
    """RTM_GETROUTE for one destination: the kernel's route lookup (``ip route get``)."""
    body = RTMSG.pack(family_of(dst.version), dst.max_prefixlen, 0, 0, 0, 0, 0, 0, 0) + attr(RTA_DST, dst.packed)
    return RTM_GETROUTE, 0, body


def dumproutes(version: int) -> Request:
    return RTM_GETROUTE, NLM_F_DUMP, RTMSG.pack(family_of(version), 0, 0, 0, 0, 0, 0, 0, 0)


def parse_route(payload: bytes) -> RouteMsg | None:
    if len(payload) < RTMSG.size:
        return None
    family, dst_len, _src, _tos, table, proto, scope, rtype, _flags = RTMSG.unpack_from(payload)
    if family not in (socket.AF_INET, socket.AF_INET6):
        return None
    attrs = parse_attrs(payload, RTMSG.size)
    table = get_u32(attrs, RTA_TABLE) or table
    gw_raw = attrs.get(RTA_GATEWAY)
    mtu = advmss = None
    if RTA_METRICS in attrs:
        metrics = parse_attrs(attrs[RTA_METRICS])
        mtu, advmss = get_u32(metrics, RTAX_MTU), get_u32(metrics, RTAX_ADVMSS)
    return RouteMsg(dst=network(family, attrs.get(RTA_DST) or b"", dst_len),
                    gateway=address(gw_raw) if gw_raw else None, oif=get_u32(attrs, RTA_OIF), table=table,
                    proto=proto, scope=scope, type=rtype, priority=get_u32(attrs, RTA_PRIORITY), mtu=mtu,
                    advmss=advmss)


# Memoised: building ipaddress objects dominated a 5000-route dump (the daemon's node routes);
# the same few thousand destinations and next hops come back on every reconciliation.
@functools.lru_cache(maxsize=1 << 16)
def network(family: int, raw: bytes, prefixlen: int) -> IPNetwork:
    size = 4 if family == socket.AF_INET else 16
    return ipaddress.ip_network((ipaddress.ip_address(raw.ljust(size, b"\0")[:size]), prefixlen), strict=False)


@functools.lru_cache(maxsize=1 << 16)
def address(raw: bytes) -> IPAddress:
    return ipaddress.ip_address(raw)
