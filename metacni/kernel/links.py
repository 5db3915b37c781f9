"""Links: veth pairs born in the pod netns, bridges and bridge-port settings.

Creating the veth with its peer born directly inside the pod namespace (one RTM_NEWLINK
carrying ``IFLA_NET_NS_FD`` for the peer, names, MTU and MACs set at creation) is an order of
magnitude cheaper than creating it on the node and moving it (figures: bench/README.md), so pods never get a
link moved into them.
"""

from __future__ import annotations

import contextlib
import os
import time

from metacni.netlink import rtnl as nl
from metacni.netlink.rtnl import EEXIST, ENODEV, IFF_PROMISC, IFF_UP, LinkInfo, LinkSpec, NetlinkError, Rtnl, is_errno

from .iproute import iproute

__all__ = ["IFF_PROMISC", "IFF_UP", "LinkExistsError", "LinkInfo", "LinkSpec", "create_veth_in_netns",
           "delete_link", "ensure_bridge", "get_link", "list_links", "set_link", "set_up"]


class LinkExistsError(Exception):
    """A link of the requested name already exists (the host or the pod side of a veth)."""


def get_link(ipr: Rtnl, name: str | None = None, index: int | None = None) -> LinkInfo | None:
    """The link by name or index in the socket's netns, or None when there is none
    (one RTM_GETLINK filtered by the kernel, statistics left out)."""
    try:
        msgs = ipr.request(nl.getlink(name, index or 0), f"get link {name or index}")
    except NetlinkError as exc:
        if is_errno(exc, ENODEV):
            return None
        raise
    return nl.parse_link(msgs[0]) if msgs else None


def list_links(ipr: Rtnl) -> list[LinkInfo]:
    return [nl.parse_link(m) for m in ipr.dump(nl.dumplinks(), "dump links")]


def set_link(ipr: Rtnl, spec: LinkSpec) -> None:
    """Change an existing link (by ``spec.index``, or by ``spec.name`` when index is 0)."""
    ipr.request(nl.newlink(spec, create=False), f"set link {spec.index or spec.name}")


def ensure_bridge(ipr: Rtnl, name: str, mtu: int = 0, mac: str | None = None) -> tuple[LinkInfo, bool]:
    """Return the bridge ``name`` up, creating it if missing; (info, created).

    Concurrent ADDs race to create it: EEXIST means another one won, and we reuse theirs.
    ``mtu`` and ``mac`` apply only at creation, as in the reference plugin; an explicit MAC
    keeps the bridge address from following its lowest port. A non-bridge link of that name
    raises ValueError. The usual case (bridge there and up) is one request.
    """
    created = False
    link = get_link(ipr, name)
    if link is None:
        create = nl.newlink(LinkSpec(name=name, kind="bridge", mtu=mtu, mac=mac, up=True), create=True)
        res, got = ipr.batch([create, nl.getlink(name)], [f"create bridge {name}", f"get link {name}"])
        if isinstance(res, NetlinkError) and not is_errno(res, EEXIST):
            raise res
        created = not isinstance(res, NetlinkError)
        if isinstance(got, NetlinkError) or not got:
            raise RuntimeError(f"bridge {name!r} vanished right after creation")
        link = nl.parse_link(got[0])
    if link.kind != "bridge":
        raise ValueError(f"{name!r} already exists but is not a bridge (kind {link.kind or 'none'!r})")
    if not link.admin_up:
        set_up(ipr, link.index)
        link = get_link(ipr, index=link.index) or link
    return link, created


def create_veth_in_netns(ipr: Rtnl, host_name: str, peer_name: str, netns_path: str, *,
                         master: int | None = None, mtu: int = 0, host_mac: str | None = None,
                         peer_mac: str | None = None, hairpin: bool = False,
                         isolated: bool = False) -> LinkInfo:
    """Create ``host_name`` here with its peer ``peer_name`` born inside ``netns_path``.

    The host end is created up and, when ``master`` is given, already enslaved, with the
    bridge-port flags set and read back, all in one round trip. The peer is left down (it is
    configured from inside the pod). Raises LinkExistsError when either name is taken; nothing
    is left behind in that case. Returns the host end (``peer_index`` is the pod end's index).
    """
    fd = os.open(netns_path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        peer = LinkSpec(name=peer_name, mtu=mtu, mac=peer_mac, netns_fd=fd)
        spec = LinkSpec(name=host_name, kind="veth", up=True, mtu=mtu, mac=host_mac, master=master, peer=peer)
        reqs = [nl.newlink(spec, create=True)]
        what = [f"create veth {host_name} (peer {peer_name} in {netns_path})"]
        if (hairpin or isolated) and master is not None:
            # By name, as a bridge_slave change: the index is not known before the create.
            port = nl.u8(nl.IFLA_BRPORT_MODE, 1) if hairpin else b""
            port += nl.u8(nl.IFLA_BRPORT_ISOLATED, 1) if isolated else b""
            reqs.append(nl.newlink(LinkSpec(name=host_name, slave_kind="bridge", slave_data=port), create=False))
            what.append(f"bridge port flags of {host_name}")
        reqs.append(nl.getlink(host_name))
        what.append(f"get link {host_name}")
        results = ipr.batch(reqs, what)
    finally:
        os.close(fd)
    created = results[0]
    if isinstance(created, NetlinkError):
        if is_errno(created, EEXIST):
            raise LinkExistsError(f"{host_name!r} or peer {peer_name!r} already exists") from None
        raise created
    for res in results[1:]:
        if isinstance(res, NetlinkError):
            with contextlib.suppress(NetlinkError):
                delete_link(ipr, host_name)
            raise res
    got = results[-1]
    assert isinstance(got, list) and got
    return nl.parse_link(got[0])


def delete_link(ipr: Rtnl, name: str) -> bool:
    """Delete ``name``; False when it was already gone (DEL must be idempotent)."""
    try:
        ipr.request(nl.dellink(name), f"delete link {name}")
    except NetlinkError as exc:
        if is_errno(exc, ENODEV):
            return False
        raise
    return True


def set_up(ipr: Rtnl, index: int) -> None:
    set_link(ipr, LinkSpec(index=index, up=True))


def set_promisc(ipr: Rtnl, index: int, on: bool) -> None:
    """Promiscuous mode, e.g. so a bridge delivers hairpinned frames to the host stack."""
    set_link(ipr, LinkSpec(index=index, promisc=on))


def set_hairpin(ipr: Rtnl, index: int, on: bool) -> None:
    """Hairpin on a bridge port: frames may leave through the port they came in on."""
    ipr.request(nl.brport(index, hairpin=on), f"hairpin on link {index}")


def set_port_isolated(ipr: Rtnl, index: int, on: bool) -> None:
    """Isolated bridge ports only talk to non-isolated ones (the host, the gateway)."""
    ipr.request(nl.brport(index, isolated=on), f"isolation on link {index}")


def set_vlan_filtering(ipr: Rtnl, bridge_index: int) -> None:
    """Turn on 802.1Q filtering on the bridge (needed before per-port VLANs mean anything).
    Rare: through pyroute2, in the socket's netns."""
    with iproute(ipr) as ip:
        ip.link("set", index=bridge_index, kind="bridge", br_vlan_filtering=1)


def set_access_vlan(ipr: Rtnl, port_index: int, vid: int, keep_default: bool = False) -> None:
    """Make a bridge port an access port of ``vid`` (PVID, untagged egress), through pyroute2."""
    with iproute(ipr) as ip:
        ip.vlan_filter("add", index=port_index, vlan_info={"vid": vid, "flags": ["pvid", "untagged"]})
        if not keep_default and vid != 1:
            try:
                ip.vlan_filter("del", index=port_index, vlan_info={"vid": 1})
            except Exception as exc:  # pyroute2's NetlinkError: no default VLAN entry on this port
                if getattr(exc, "code", None) is None:
                    raise


def wait_oper_up(ipr: Rtnl, index: int, timeout: float = 5.0) -> LinkInfo:
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
