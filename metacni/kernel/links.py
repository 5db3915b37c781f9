"""Links: veth pairs born in the pod netns, bridges and bridge-port settings.

Creating the veth with its peer born directly inside the pod namespace (one RTM_NEWLINK
carrying ``IFLA_NET_NS_FD`` for the peer) costs ~1.5 ms, while creating it on the node and
moving it costs ~16 ms, so pods never get a link moved into them.
"""

from __future__ import annotations

import contextlib
import os
import time
from dataclasses import dataclass
from typing import Any

from .rtnl import EEXIST, ENODEV, IPRoute, NetlinkError, is_errno

IFF_UP = 0x1
IFF_PROMISC = 0x100


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

    @property
    def admin_up(self) -> bool:
        return bool(self.flags & IFF_UP)

    @property
    def promisc(self) -> bool:
        return bool(self.flags & IFF_PROMISC)


class LinkExistsError(Exception):
    """A link of the requested name already exists (the host or the pod side of a veth)."""


def _info(msg: Any) -> LinkInfo:
    kind = msg.get_nested("IFLA_LINKINFO", "IFLA_INFO_KIND") or ""
    return LinkInfo(
        index=int(msg["index"]),
        name=str(msg.get_attr("IFLA_IFNAME")),
        mac=str(msg.get_attr("IFLA_ADDRESS") or ""),
        mtu=int(msg.get_attr("IFLA_MTU") or 0),
        kind=str(kind),
        master=msg.get_attr("IFLA_MASTER"),
        flags=int(msg["flags"]),
        operstate=str(msg.get_attr("IFLA_OPERSTATE") or ""),
        peer_index=msg.get_attr("IFLA_LINK"),
    )


def get_link(ipr: IPRoute, name: str | None = None, index: int | None = None) -> LinkInfo | None:
    """The link by name or index in the socket's netns, or None when there is none.

    One RTM_GETLINK filtered by the kernel: pyroute2's ``get_links(ifname=...)`` dumps every
    link and filters in Python, which costs ~20 ms on a node with a few dozen pods.
    """
    try:
        msgs = ipr.link("get", index=index) if index is not None else ipr.link("get", ifname=name)
    except NetlinkError as exc:
        if is_errno(exc, ENODEV):
            return None
        raise
    return _info(msgs[0]) if msgs else None


def ensure_bridge(ipr: IPRoute, name: str, mtu: int = 0, mac: str | None = None) -> tuple[LinkInfo, bool]:
    """Return the bridge ``name`` up, creating it if missing; (info, created).

    Concurrent ADDs race to create it: EEXIST means another one won, and we reuse theirs.
    ``mtu`` and ``mac`` apply only at creation, as in the reference plugin; an explicit MAC
    keeps the bridge address from following its lowest port. A non-bridge link of that name
    raises ValueError.
    """
    created = False
    link = get_link(ipr, name)
    if link is None:
        kwargs: dict[str, Any] = {"ifname": name, "kind": "bridge"}
        if mtu:
            kwargs["mtu"] = mtu
        if mac:
            kwargs["address"] = mac
        try:
            ipr.link("add", **kwargs)
            created = True
        except NetlinkError as exc:
            if not is_errno(exc, EEXIST):
                raise
        link = get_link(ipr, name)
        if link is None:
            raise RuntimeError(f"bridge {name!r} vanished right after creation")
    if link.kind != "bridge":
        raise ValueError(f"{name!r} already exists but is not a bridge (kind {link.kind or 'none'!r})")
    if not link.admin_up:
        ipr.link("set", index=link.index, state="up")
        link = get_link(ipr, index=link.index) or link
    return link, created


def create_veth_in_netns(ipr: IPRoute, host_name: str, peer_name: str, netns_path: str, *,
                         master: int | None = None, mtu: int = 0, host_mac: str | None = None,
                         peer_mac: str | None = None) -> None:
    """Create ``host_name`` here with its peer ``peer_name`` born inside ``netns_path``.

    The host end is created up and, when ``master`` is given, already enslaved, all in one
    netlink request. The peer is left down (it is configured from inside the pod). Raises
    LinkExistsError when either name is taken; nothing is left behind in that case.
    """
    fd = os.open(netns_path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        peer: dict[str, Any] = {"ifname": peer_name, "net_ns_fd": fd}
        kwargs: dict[str, Any] = {"ifname": host_name, "kind": "veth", "state": "up", "peer": peer}
        if mtu:
            kwargs["mtu"] = mtu
            peer["mtu"] = mtu
        if host_mac:
            kwargs["address"] = host_mac
        if peer_mac:
            peer["address"] = peer_mac
        if master is not None:
            kwargs["master"] = master
        try:
            ipr.link("add", **kwargs)
        except NetlinkError as exc:
            if is_errno(exc, EEXIST):
                raise LinkExistsError(f"{host_name!r} or peer {peer_name!r} already exists") from None
            raise
    finally:
        os.close(fd)


def delete_link(ipr: IPRoute, name: str) -> bool:
    """Delete ``name``; False when it was already gone (DEL must be idempotent)."""
    try:
        ipr.link("del", ifname=name)
    except NetlinkError as exc:
        if is_errno(exc, ENODEV):
            return False
        raise
    return True


def set_up(ipr: IPRoute, index: int) -> None:
    ipr.link("set", index=index, state="up")


def set_promisc(ipr: IPRoute, index: int, on: bool) -> None:
    """Promiscuous mode, e.g. so a bridge delivers hairpinned frames to the host stack."""
    ipr.link("set", index=index, flags=IFF_PROMISC if on else 0, change=IFF_PROMISC)


def set_hairpin(ipr: IPRoute, index: int, on: bool) -> None:
    """Hairpin on a bridge port: frames may leave through the port they came in on."""
    ipr.brport("set", index=index, mode=1 if on else 0)


def set_port_isolated(ipr: IPRoute, index: int, on: bool) -> None:
    """Isolated bridge ports only talk to non-isolated ones (the host, the gateway)."""
    ipr.brport("set", index=index, isolated=1 if on else 0)


def set_vlan_filtering(ipr: IPRoute, bridge_index: int) -> None:
    """Turn on 802.1Q filtering on the bridge (needed before per-port VLANs mean anything)."""
    ipr.link("set", index=bridge_index, kind="bridge", br_vlan_filtering=1)


def set_access_vlan(ipr: IPRoute, port_index: int, vid: int, keep_default: bool = False) -> None:
    """Make a bridge port an access port of ``vid`` (PVID, untagged egress)."""
    ipr.vlan_filter("add", index=port_index, vlan_info={"vid": vid, "flags": ["pvid", "untagged"]})
    if not keep_default and vid != 1:
        with contextlib.suppress(NetlinkError):  # no default VLAN entry on this port
            ipr.vlan_filter("del", index=port_index, vlan_info={"vid": 1})


def wait_oper_up(ipr: IPRoute, index: int, timeout: float = 5.0) -> LinkInfo:
    """Poll until the link's operstate is UP (or UNKNOWN, which virtual links report).

    A veth reports UP once both ends are up; waiting here means the first packets of the pod
    are not dropped by a port still in transition. Raises TimeoutError after ``timeout``.
    """
    deadline = time.monotonic() + timeout
    delay = 0.0005
    while True:
        link = get_link(ipr, index=index)
        if link is None:
            raise LookupError(f"link index {index} disappeared")
        if link.operstate in ("UP", "UNKNOWN") and link.admin_up:
            return link
        if time.monotonic() >= deadline:
            raise TimeoutError(f"link {link.name!r} is {link.operstate} after {timeout}s")
        time.sleep(delay)
        delay = min(delay * 2, 0.05)
