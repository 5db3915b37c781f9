"""What a bridge config that came from a NAD may do on the node (docs/design/1408-nad-bridges.md).

metacni marks every plugin object of a NAD's config with ``metacniTenant`` (the NAD's namespace
and the node's ``sharedBridges``; metacni/meta/trust.py, where tenants' own copies are stripped).
Such a config:

- may attach to a bridge it creates (tagged ``metacni:ns=<namespace>`` in IFLA_IFALIAS), to one
  created for a NAD of the same namespace, or to a pre-existing bridge the node lists in
  ``sharedBridges``; never to the node's own bridges or links (the primary's ``cni0``, anything
  untagged) nor to a bridge of another namespace (a cross-tenant L2 join);
- may not put a gateway address on the host whose subnet overlaps a route the node has on
  another interface (it would take other pods' or the node's traffic).

Refusals are code 7 naming the field, the network and the namespace, before the kernel change.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from metacni.kernel import links, routes
from metacni.netlink import rtnl as nl
from metacni.netlink.rtnl import Rtnl
from metacni.plugin import CNIError, Code, IPConfig, Request

from .config import BridgeConf

TENANT_KEY = "metacniTenant"  # metacni.meta.trust.TENANT_KEY (plugins may not import meta)
TAG_PREFIX = "metacni:ns="


class Tenant:
    """The NAD origin of a config: its namespace and the node's shared bridges."""

    __slots__ = ("namespace", "shared_bridges")

    def __init__(self, namespace: str, shared_bridges: tuple[str, ...]) -> None:
        self.namespace = namespace
        self.shared_bridges = shared_bridges

    @property
    def tag(self) -> str:
        return TAG_PREFIX + self.namespace


def of(request: Request) -> Tenant | None:
    """The tenant mark of the request's config, None for the node's own configs."""
    raw: Any = request.config.get(TENANT_KEY)
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raw = {}
    shared = raw.get("sharedBridges")
    return Tenant(str(raw.get("namespace", "")),
                  tuple(b for b in shared if isinstance(b, str)) if isinstance(shared, list) else ())


def _refuse(conf: BridgeConf, tenant: Tenant, request: Request, field: str, why: str) -> CNIError:
    return CNIError(Code.INVALID_CONFIG, "refused by node policy",
                    f"network {conf.network!r} (NetworkAttachmentDefinition of namespace {tenant.namespace!r}), "
                    f"container {request.container_id}: {field}: {why}")


def check_bridge(ipr: Rtnl, conf: BridgeConf, tenant: Tenant, request: Request) -> None:
    """Before the bridge is created or joined: code 7 unless this tenant may use it."""
    link = links.get_link(ipr, conf.bridge)
    if link is None:
        return  # created for this tenant, then tagged (:func:`claim`)
    _check_existing(link, conf, tenant, request)


def _check_existing(link: links.LinkInfo, conf: BridgeConf, tenant: Tenant, request: Request) -> None:
    if link.alias == tenant.tag:
        return
    if link.alias.startswith(TAG_PREFIX):
        raise _refuse(conf, tenant, request, "bridge",
                      f"{conf.bridge!r} belongs to the NADs of another namespace")
    if conf.bridge in tenant.shared_bridges:
        return
    raise _refuse(conf, tenant, request, "bridge",
                  f"{conf.bridge!r} is a link of the node (not created for this namespace's NADs); "
                  "only bridges in the node setting sharedBridges may be shared")


def claim(ipr: Rtnl, br: links.LinkInfo, created: bool, conf: BridgeConf, tenant: Tenant, request: Request) -> None:
    """After ensure_bridge: tag a bridge this ADD created; re-check one another ADD created
    between :func:`check_bridge` and now."""
    if created:
        links.set_link(ipr, nl.LinkSpec(index=br.index, alias=tenant.tag))
        return
    current = links.get_link(ipr, index=br.index) or br
    _check_existing(current, conf, tenant, request)


def delete_if_unused(index: int) -> None:
    """Rollback of an ADD that created a NAD's bridge: delete it unless a port joined meanwhile."""
    with nl.rtnl() as ipr:
        if any(link.master == index for link in links.list_links(ipr)):
            return
        br = links.get_link(ipr, index=index)
        if br is not None and br.alias.startswith(TAG_PREFIX):
            links.delete_link(ipr, br.name)


def check_gateways(ipr: Rtnl, conf: BridgeConf, tenant: Tenant, request: Request, br_index: int,
                   ips: list[IPConfig]) -> None:
    """Before gateway addresses go on the host: none may overlap a route of another interface
    (default routes aside: every subnet overlaps those)."""
    for ip in ips:
        if not ip.gateway:
            continue
        prefix = ipaddress.ip_interface(ip.address).network.prefixlen
        net = ipaddress.ip_interface(f"{ip.gateway}/{prefix}").network  # what _gateways puts on the host
        r = routes.overlapping_route(routes.dump_routes(ipr, net.version), net, exclude_oif=br_index)
        if r is not None:
            raise _refuse(conf, tenant, request, "isGateway",
                          f"gateway {ip.gateway} for {net} overlaps the node's route to {r.dst} on another "
                          "interface; a NAD may not take over node or other pods' traffic")
