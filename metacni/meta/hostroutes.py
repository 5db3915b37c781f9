"""NAD plugins that write the pod's addresses into the node's routing table (docs/design/1409).

The reference ``ptp`` plugin puts each IPAM gateway on its host-side veth as a node address
(``<gateway>/32``) and routes the pod's address to that veth, in the node's main table. From a
NAD, both come from the tenant: a range overlapping a node route would take that traffic (the
node's LAN, another node's pod CIDR), a gateway equal to a node address would move it. As for
NAD bridges' gateways (design 1408, plugins/bridge/tenant.py), every subnet, address and gateway
a ``ptp`` NAD's IPAM names must overlap no route of the node, default routes aside; this is
checked before any plugin runs. IPAM types whose addresses are unknown until they run (dhcp,
third-party) are refused for ``ptp`` unless the node lists ``ptp`` in ``nadPluginTypes``.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator, Mapping
from typing import Any

from metacni.kernel.routes import dump_routes, overlapping_route
from metacni.netlink.rtnl import rtnl

from .refusal import refused

#: plugin types that route the pod's addresses through the node's main table
ROUTING_TYPES = frozenset({"ptp"})

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def _net(key: str, value: Any) -> IPNetwork:
    """A subnet or address as its network; a gateway as a host route (what lands on the node)."""
    if key == "gateway":
        return ipaddress.ip_network(str(value))
    return ipaddress.ip_interface(str(value)).network


def host_local_ranges(ipam: Mapping[str, Any]) -> Iterator[tuple[str, Mapping[str, Any]]]:
    """(JSON path under ipam, range object) of host-local's ``ranges``; ("", ipam) for the legacy
    single range."""
    ranges = ipam.get("ranges")
    if not isinstance(ranges, list):
        yield "", ipam
        return
    for i, rset in enumerate(ranges):
        for j, r in enumerate(rset if isinstance(rset, list) else []):
            if isinstance(r, Mapping):
                yield f"ranges[{i}][{j}]", r


def _networks(ipam: Mapping[str, Any]) -> Iterator[tuple[str, IPNetwork]]:
    """(JSON path under ipam, network) of every subnet, address and gateway of host-local or
    static IPAM; ValueError when one is not an address."""
    if ipam.get("type") == "host-local":
        for at, r in host_local_ranges(ipam):
            for key in ("subnet", "gateway"):
                if r.get(key):
                    yield f"{at}.{key}" if at else key, _net(key, r[key])
    addresses = ipam.get("addresses") if ipam.get("type") == "static" else None
    for i, a in enumerate(addresses if isinstance(addresses, list) else []):
        for key in ("address", "gateway"):
            if isinstance(a, Mapping) and a.get(key):
                yield f"addresses[{i}].{key}", _net(key, a[key])


def check_routing_plugin(plugin: Mapping[str, Any], path: str, where: str, opted_in: bool) -> None:
    """Code 7 when a ``ptp``-like plugin object of a NAD (``path``: the JSON path of its ipam)
    would route addresses that overlap a node route; ``opted_in``: the node lists the type in
    ``nadPluginTypes`` (then IPAM types metacni cannot read are let through)."""
    ipam = plugin.get("ipam")
    kind = ipam.get("type") if isinstance(ipam, Mapping) else None
    if not isinstance(ipam, Mapping) or kind not in ("host-local", "static"):
        if opted_in:
            return
        raise refused(f"{where}: {path}.type {kind!r}: {plugin.get('type')!r} routes the pod's addresses "
                      "through the node and metacni can check them only for host-local or static IPAM; "
                      f"allowed when the node setting nadPluginTypes lists {plugin.get('type')!r}")
    try:
        wanted = list(_networks(ipam))
    except ValueError:
        return  # not addresses: the plugin refuses its own config
    with rtnl() as ipr:
        routes = [r for version in (4, 6) for r in dump_routes(ipr, version)]
    for key, net in wanted:
        r = overlapping_route(routes, net)
        if r is not None:
            raise refused(f"{where}: {path}.{key} {net} overlaps the node's route to {r.dst}: "
                          f"{plugin.get('type')!r} would route it through the node; a NAD may not take "
                          "over node or other pods' traffic")
