"""``default-route`` from the selection annotation: move the pod's default route(s).

For each IP family with a requested gateway: every other attachment loses its default route
of that family (in the netns and in its result), and the requesting attachment gets one via
the gateway. Families nobody asked for are left alone (Multus drops both; we do not).
"""

from __future__ import annotations

import ipaddress
import socket

from metacni.kernel import netns
from metacni.kernel.routes import RouteSpec, add_route
from metacni.kernel.rtnl import IPRoute, rtnl
from metacni.spec.errors import CNIError, Code
from metacni.spec.results import Result, Route

from .networks import Delegate

_DEFAULT = {4: ipaddress.ip_network("0.0.0.0/0"), 6: ipaddress.ip_network("::/0")}


def requested(delegates: list[Delegate]) -> dict[int, tuple[Delegate, str]]:
    """family → (delegate, gateway) for every gateway in a selection's ``default-route``."""
    out: dict[int, tuple[Delegate, str]] = {}
    for d in delegates:
        for gw in (d.selection.default_route or []) if d.selection else []:
            out[ipaddress.ip_address(gw).version] = (d, gw)
    return out


def _is_default(route: Route, family: int) -> bool:
    net = ipaddress.ip_network(route.dst, strict=False)
    return net.version == family and net.prefixlen == 0


def _drop_kernel_defaults(ipr: IPRoute, index: int, family: int) -> None:
    fam = socket.AF_INET if family == 4 else socket.AF_INET6
    for msg in ipr.get_routes(family=fam, oif=index, table=254):
        if msg["dst_len"] == 0 and msg["type"] == 1:
            ipr.route("del", family=fam, dst="0.0.0.0/0" if family == 4 else "::/0", oif=index,
                      gateway=msg.get_attr("RTA_GATEWAY"), priority=msg.get_attr("RTA_PRIORITY"))


def apply(netns_path: str, attached: list[tuple[Delegate, Result]]) -> list[tuple[Delegate, Result]]:
    """Rewrite default routes in the pod and return the results edited to match."""
    wanted = requested([d for d, _ in attached])
    if not wanted:
        return attached
    edited = [(d, r.model_copy(deep=True)) for d, r in attached]
    with netns.enter(netns_path), rtnl() as ipr:
        for family, (owner, gw) in wanted.items():
            for d, result in edited:
                found = ipr.link_lookup(ifname=d.ifname)
                if not found:
                    raise CNIError(Code.INTERNAL, "cannot apply default-route",
                                   f"interface {d.ifname!r} of {d.label} is not in the pod")
                _drop_kernel_defaults(ipr, found[0], family)
                result.routes = [r for r in result.routes if not _is_default(r, family)]
                if d is owner:
                    try:
                        add_route(ipr, found[0], RouteSpec(dst=_DEFAULT[family], gw=ipaddress.ip_address(gw)))
                    except Exception as exc:
                        raise CNIError(Code.INTERNAL, "cannot apply default-route",
                                       f"default via {gw} dev {d.ifname} ({d.label}): {exc}") from None
                    result.routes.append(Route(dst=str(_DEFAULT[family]), gw=gw))
    return edited
