"""``default-route`` from the selection annotation: move the pod's default route(s).

For each IP family with a requested gateway: every other attachment loses its default route
of that family (in the netns and in its result), and the requesting attachment gets one via
the gateway. Families nobody asked for are left alone (Multus drops both; we do not).
"""

from __future__ import annotations

import ipaddress

from metacni.kernel import links, netns
from metacni.kernel.routes import RT_TABLE_MAIN, RouteSpec, add_route, delete_route, dump_routes
from metacni.netlink.rtnl import Rtnl, rtnl
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


def _drop_kernel_defaults(ipr: Rtnl, index: int, family: int) -> None:
    for r in dump_routes(ipr, family):
        if r.oif == index and r.table == RT_TABLE_MAIN and r.dst.prefixlen == 0 and r.type == 1:  # RTN_UNICAST
            delete_route(ipr, r)


def apply(netns_path: str, attached: list[tuple[Delegate, Result]]) -> list[tuple[Delegate, Result]]:
    """Rewrite default routes in the pod and return the results edited to match."""
    wanted = requested([d for d, _ in attached])
    if not wanted:
        return attached
    edited = [(d, r.clone()) for d, r in attached]
    with netns.enter(netns_path), rtnl() as ipr:
        for family, (owner, gw) in wanted.items():
            for d, result in edited:
                link = links.get_link(ipr, d.ifname)
                if link is None:
                    raise CNIError(Code.INTERNAL, "cannot apply default-route",
                                   f"interface {d.ifname!r} of {d.label} is not in the pod")
                _drop_kernel_defaults(ipr, link.index, family)
                result.routes = [r for r in result.routes if not _is_default(r, family)]
                if d is owner:
                    try:
                        add_route(ipr, link.index, RouteSpec(dst=_DEFAULT[family], gw=ipaddress.ip_address(gw)))
                    except Exception as exc:
                        raise CNIError(Code.INTERNAL, "cannot apply default-route",
                                       f"default via {gw} dev {d.ifname} ({d.label}): {exc}") from None
                    result.routes.append(Route(dst=str(_DEFAULT[family]), gw=gw))
    return edited
