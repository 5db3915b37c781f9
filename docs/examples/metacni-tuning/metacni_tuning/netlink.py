"""Reading and changing the pod interface. Call only inside :func:`metacni.plugin.in_pod_netns`:
the socket and the sysctl files then both refer to the pod's namespace."""

from __future__ import annotations

import logging

from metacni.plugin import CNIError, Code, LinkInfo, LinkSpec, Rtnl, get_link, set_link, sysctl

from .config import Tuning
from .state import Snapshot

log = logging.getLogger(__name__)


def _link(ipr: Rtnl, ifname: str) -> LinkInfo:
    link = get_link(ipr, ifname)
    if link is None:
        raise CNIError(Code.INVALID_ENVIRONMENT, "interface not found",
                       f"{ifname!r} does not exist in the pod namespace")
    return link


def current(ipr: Rtnl, ifname: str, wanted: Tuning) -> Snapshot:
    """The interface's values now, plus every sysctl ``wanted`` names (which must exist)."""
    link = _link(ipr, ifname)
    values: dict[tuple[str, ...], str] = {}
    for item in wanted.sysctls:
        if not sysctl.exists(*item.parts):
            raise CNIError(Code.INVALID_CONFIG, "invalid sysctl",
                           f"sysctl[{item.key!r}]: /proc/sys/{'/'.join(item.parts)} does not exist")
        values[item.parts] = sysctl.read(*item.parts)
    return Snapshot(mtu=link.mtu, mac=link.mac, sysctls=values)


def apply(ipr: Rtnl, ifname: str, wanted: Tuning) -> LinkInfo:
    link = _link(ipr, ifname)
    try:
        if wanted.mtu is not None and link.mtu != wanted.mtu:
            set_link(ipr, LinkSpec(index=link.index, mtu=wanted.mtu))
        if wanted.mac is not None and link.mac != wanted.mac:
            set_link(ipr, LinkSpec(index=link.index, mac=wanted.mac))
        for item in wanted.sysctls:
            sysctl.ensure(item.value, *item.parts)
    except OSError as exc:  # NetlinkError is an OSError too
        raise CNIError(Code.IO_FAILURE, "cannot tune interface", f"{ifname}: {exc}") from None
    return _link(ipr, ifname)


def restore(ipr: Rtnl, ifname: str, original: Snapshot) -> None:
    """Best effort: an interface already gone has nothing left to restore."""
    link = get_link(ipr, ifname)
    if link is not None:
        try:
            if link.mtu != original.mtu:
                set_link(ipr, LinkSpec(index=link.index, mtu=original.mtu))
            if link.mac != original.mac:
                set_link(ipr, LinkSpec(index=link.index, mac=original.mac))
        except OSError as exc:
            log.warning("restoring %s failed: %s", ifname, exc)
    for parts, value in original.sysctls.items():
        try:
            if sysctl.exists(*parts):
                sysctl.ensure(value, *parts)
        except OSError as exc:
            log.warning("restoring sysctl %s failed: %s", ".".join(parts), exc)
