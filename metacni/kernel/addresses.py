"""Interface addresses through rtnetlink."""

from __future__ import annotations

from ipaddress import IPv4Interface, IPv6Interface

from metacni.netlink import rtnl as nl
from metacni.netlink.rtnl import EEXIST, IFA_F_NODAD, NetlinkError, Rtnl, is_errno

__all__ = ["IFA_F_NODAD", "IPInterface", "add_address", "add_address_request", "delete_address",
           "list_addresses"]
IPInterface = IPv4Interface | IPv6Interface


def add_address_request(index: int, address: IPInterface, *, nodad: bool = True) -> nl.Request:
    """The RTM_NEWADDR of :func:`add_address`, for callers batching it with other requests."""
    return nl.addr(nl.RTM_NEWADDR, index, address, nodad=nodad)


def add_address(ipr: Rtnl, index: int, address: IPInterface, *, nodad: bool = True) -> bool:
    """Add ``address`` (with its prefix) to the link; False when it was already there.

    IPv6 addresses get IFA_F_NODAD by default: a pod's address is unique by allocation, and
    duplicate address detection would keep it "tentative" (unusable) for about a second.
    """
    try:
        ipr.request(add_address_request(index, address, nodad=nodad), f"add address {address}")
    except NetlinkError as exc:
        if is_errno(exc, EEXIST):
            return False
        raise
    return True


def delete_address(ipr: Rtnl, index: int, address: IPInterface) -> None:
    ipr.request(nl.addr(nl.RTM_DELADDR, index, address), f"delete address {address}")


def list_addresses(ipr: Rtnl, index: int, version: int | None = None,
                   *, include_link_local: bool = False) -> list[IPInterface]:
    """The link's addresses as ip_interface objects, link-local ones left out by default."""
    out: list[IPInterface] = []
    for payload in ipr.dump(nl.dumpaddrs(version), "dump addresses"):
        info = nl.parse_addr(payload)
        if info is None or info.index != index:
            continue
        if version is not None and info.address.version != version:
            continue
        if info.address.ip.is_link_local and not include_link_local:
            continue
        out.append(info.address)
    return out
