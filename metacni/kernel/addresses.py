"""Interface addresses through rtnetlink."""

from __future__ import annotations

import ipaddress
from ipaddress import IPv4Interface, IPv6Interface

from .rtnl import EEXIST, IPRoute, NetlinkError, is_errno

IFA_F_NODAD = 0x02
IPInterface = IPv4Interface | IPv6Interface


def add_address(ipr: IPRoute, index: int, address: IPInterface, *, nodad: bool = True) -> bool:
    """Add ``address`` (with its prefix) to the link; False when it was already there.

    IPv6 addresses get IFA_F_NODAD by default: a pod's address is unique by allocation, and
    duplicate address detection would keep it "tentative" (unusable) for about a second.
    """
    kwargs: dict[str, object] = {
        "index": index, "address": str(address.ip), "prefixlen": address.network.prefixlen,
    }
    if nodad and address.version == 6:
        kwargs["flags"] = IFA_F_NODAD
    if address.version == 4 and address.network.prefixlen < 31:
        kwargs["broadcast"] = str(address.network.broadcast_address)
    try:
        ipr.addr("add", **kwargs)
    except NetlinkError as exc:
        if is_errno(exc, EEXIST):
            return False
        raise
    return True


def delete_address(ipr: IPRoute, index: int, address: IPInterface) -> None:
    ipr.addr("del", index=index, address=str(address.ip), prefixlen=address.network.prefixlen)


def list_addresses(ipr: IPRoute, index: int, version: int | None = None,
                   *, include_link_local: bool = False) -> list[IPInterface]:
    """The link's addresses as ip_interface objects, link-local ones left out by default."""
    out: list[IPInterface] = []
    for msg in ipr.get_addr(index=index):
        addr = msg.get_attr("IFA_ADDRESS") or msg.get_attr("IFA_LOCAL")
        if addr is None:
            continue
        iface = ipaddress.ip_interface(f"{addr}/{msg['prefixlen']}")
        if version is not None and iface.version != version:
            continue
        if iface.ip.is_link_local and not include_link_local:
            continue
        out.append(iface)
    return out
