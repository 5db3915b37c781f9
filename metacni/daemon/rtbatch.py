"""Batched rtnetlink for bulk route work (thousands of node routes).

One request per route (encode, send, wait for the ack, decode) is too slow for a
5000-node cluster (figures: bench/README.md). This sends RTM_NEWROUTE/RTM_DELROUTE in chunks of a
few hundred per ``send`` and then reads the acks, through the stdlib codec and socket of
:mod:`metacni.netlink.rtnl` / :mod:`metacni.netlink.rtnl` (the one codec the pod data path
uses too).
"""

from __future__ import annotations

import errno
import os
import socket
from collections.abc import Iterable
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network

from metacni.netlink import rtnl as nl
from metacni.netlink.rtnl import RT_TABLE_MAIN, RTN_UNICAST, NetlinkError, RouteMsg, Rtnl

__all__ = ["CHUNK", "RTN_UNICAST", "NetlinkRouteError", "Route", "RouteSocket"]

CHUNK = 256
RCVBUF = 4 << 20  # a chunk's acks must fit: the kernel drops what overflows (ENOBUFS)

Net = IPv4Network | IPv6Network
Addr = IPv4Address | IPv6Address
Route = RouteMsg


class NetlinkRouteError(OSError):
    def __init__(self, code: int, op: str, dst: Net) -> None:
        super().__init__(code, f"{op} {dst}: {os.strerror(code)}")
        self.dst = dst


class RouteSocket:
    """An rtnetlink socket in the calling thread's netns (the socket keeps it), for route bulk work."""

    def __init__(self) -> None:
        self.rtnl = Rtnl()
        self.rtnl.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF)

    def close(self) -> None:
        self.rtnl.close()

    def __enter__(self) -> RouteSocket:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def dump(self, family: int, table: int = RT_TABLE_MAIN) -> list[Route]:
        """The routes of one family in ``table``."""
        version = 4 if family == socket.AF_INET else 6
        return [r for r in map(nl.parse_route, self.rtnl.dump(nl.dumproutes(version), "route dump"))
                if r is not None and r.table == table]

    def apply(self, changes: Iterable[tuple[str, Net, Addr | None, int]],
              table: int = RT_TABLE_MAIN) -> list[NetlinkRouteError]:
        """Run ("replace"|"delete", dst, gateway, proto) changes in chunks; returns the failures."""
        errors: list[NetlinkRouteError] = []
        batch: list[tuple[str, Net, nl.Request]] = []
        for op, dst, gw, proto in changes:
            msg = RouteMsg(dst=dst, gateway=gw, table=table, proto=proto)
            req = nl.route(nl.RTM_NEWROUTE, msg, replace=True) if op == "replace" else nl.route(nl.RTM_DELROUTE, msg)
            batch.append((op, dst, req))
            if len(batch) >= CHUNK:
                errors += self._send_chunk(batch)
                batch = []
        if batch:
            errors += self._send_chunk(batch)
        return errors

    def _send_chunk(self, batch: list[tuple[str, Net, nl.Request]]) -> list[NetlinkRouteError]:
        errors: list[NetlinkRouteError] = []
        for (op, dst, _), res in zip(batch, self.rtnl.batch([req for _, _, req in batch]), strict=True):
            if isinstance(res, NetlinkError) and not (op == "delete" and res.errno == errno.ESRCH):
                errors.append(NetlinkRouteError(res.code, op, dst))
        return errors
