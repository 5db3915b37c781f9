"""The public API for plugin authors. Import from here; everything else is internal.

    from metacni.plugin import hookimpl, PluginInfo, Request, Result, CNIError, Code

The hooks themselves are documented in :mod:`metacni.engine.hookspecs`; docs/plugins.md is
the tutorial. What lives here, grouped by what an author needs:

- hooks and declarations: :data:`hookimpl`, :class:`PluginInfo`, :class:`Request`, verbs;
- results: :class:`Result` and its parts, :func:`result_from_prev`, :func:`find_interface`;
- errors: :class:`CNIError`, :class:`Code`, :func:`invalid_config`, :func:`bad_field`;
- config models (pydantic): :class:`PluginConfig`, :class:`IPAMSection`, :func:`validate_config`
  (declare one with the ``cni_config_model`` hook); :class:`ReferenceConfig` (``null`` is the
  default), :func:`unsupported` (code 2); :class:`FirewallConfig` (``backend``);
- namespaces and netlink: :func:`enter_netns`, :func:`in_pod_netns`, :func:`netns_exists`,
  ``rtnl``/``Rtnl``, ``iproute`` (pyroute2) and the link, address, route and ``sysctl`` helpers;
- the node firewall: ``FirewallBackend`` (the interface both backends implement),
  ``firewall`` (choose/add/delete/check/gc), plans and ``add_masquerade``/``del_masquerade``.

``rtnl()`` yields a stdlib rtnetlink socket
(:class:`metacni.netlink.rtnl.Rtnl`): the helpers here use it directly
(``set_link(ipr, LinkSpec(index=..., mtu=...))`` changes a link). For anything else,
``with iproute(ipr) as ip: ip.link("set", ...)`` runs pyroute2's ``IPRoute`` in the same netns
(imported on first use: a heavy optional dependency).
Netlink failures are ``NetlinkError``, an ``OSError`` whose ``errno`` (or ``code``) says why.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Generic, Literal, TypeVar

from pydantic import Field

from metacni.engine.markers import hookimpl
from metacni.engine.request import ADD, CHECK, DEL, GC, STATUS, Invocation, PluginInfo, Request
from metacni.firewall import backend as firewall
from metacni.firewall.backend import Backend as FirewallBackend
from metacni.firewall.identity import Attachment
from metacni.firewall.masq import add_masquerade, del_masquerade
from metacni.firewall.plan import ForwardPlan, IPInterface, MasqPlan, Plan, PortMapping, PortmapPlan, attachment_ips
from metacni.kernel import sysctl
from metacni.kernel.addresses import add_address, delete_address, list_addresses
from metacni.kernel.iproute import iproute
from metacni.kernel.links import LinkInfo, LinkSpec, get_link, set_link, set_up
from metacni.kernel.netns import enter as enter_netns
from metacni.kernel.netns import exists as netns_exists
from metacni.kernel.routes import RouteSpec, add_route, list_routes
from metacni.netlink.rtnl import NetlinkError, Rtnl, is_errno, rtnl
from metacni.spec.args import CniArgs
from metacni.spec.errors import CNIError, Code, invalid_config
from metacni.spec.models import IPAMSection, PluginConfig, ReferenceConfig, ReferenceIPAM, unsupported, validate_config
from metacni.spec.results import DNS, Interface, IPConfig, Result, Route, convert, parse_result
from metacni.spec.versions import ALL_VERSIONS


# ---------------------------------------------------------------------- errors
def bad_field(field: str, problem: str) -> CNIError:
    """A code-7 error naming the config field at fault: ``raise bad_field("mtu", "not an int")``."""
    return CNIError(Code.INVALID_CONFIG, f"invalid {field}", f"{field}: {problem}")


# ---------------------------------------------------------------------- results
def result_from_prev(request: Request) -> Result:
    """A copy of ``request.prev_result`` to change and return, or an empty result in the
    request's version when the plugin runs first. Mutating the copy never affects the
    engine's record of what the previous plugin returned."""
    if request.prev_result is None:
        return request.result()
    return request.prev_result.clone()


def find_interface(result: Result, name: str, sandbox: str | None = None) -> int | None:
    """Index of interface ``name`` in ``result.interfaces`` (inside ``sandbox`` if given).

    ``IPConfig.interface`` refers to interfaces by this index. A host-side interface of the
    same name has no sandbox, so passing the request's netns picks the pod's one.
    """
    for index, iface in enumerate(result.interfaces):
        if iface.name == name and (sandbox is None or iface.sandbox == sandbox):
            return index
    return None


# ---------------------------------------------------------------------- namespaces
@contextmanager
def in_pod_netns(request: Request) -> Iterator[Rtnl]:
    """Enter the pod's netns (``request.netns``) for the block; yield a netlink socket there.

    Only the calling thread moves (setns is per thread), so this is safe in the daemon where
    other pods are served concurrently; ``sysctl`` reads and writes in the block also apply
    to the pod. A missing netns raises CNIError code 4 naming the path -- in DEL check
    :func:`netns_exists` first, since DEL must succeed when the pod is already gone.
    """
    if not request.netns:
        raise CNIError(Code.INVALID_ENVIRONMENT, "no network namespace", "CNI_NETNS is empty")
    with enter_netns(request.netns), rtnl() as ipr:
        yield ipr


# ---------------------------------------------------------------------- chained firewall plugins
class FirewallConfig(ReferenceConfig):
    """The key every firewall plugin has: ``backend``, the firewall to program (unset, ``null``
    or empty: the node's, :func:`metacni.firewall.backend.choose`)."""

    backend: Literal["nftables", "iptables", ""] | None = Field(None, alias="backend")

    @property
    def firewall(self) -> str | None:
        """The backend asked for, or None to detect it."""
        return self.backend or None


F = TypeVar("F", bound=FirewallConfig)


class ChainedFirewallPlugin(Generic[F]):
    """The hooks of a chained plugin that is one firewall feature (``forward``, ``masq``).

    ``plan(keys, attachment, ips)`` builds the feature's plan from the validated config
    (``model``, a :class:`FirewallConfig`); ADD applies it, CHECK checks it when the pod has
    addresses, DEL needs only the attachment identity and ``backend`` (so it works after the
    netns is gone), GC keeps ``valid_attachments``. No ``prevResult`` is CNI error 7 "<kind>
    needs prevResult"; bad keys are error 7 from ``model``. The plugin module binds
    :meth:`hooks` to the hook names (plugins are modules).
    """

    def __init__(self, kind: str, model: type[F], description: str,
                 plan: Callable[[F, Attachment, tuple[IPInterface, ...]], MasqPlan | ForwardPlan]) -> None:
        self.kind, self.model, self.description, self.plan = kind, model, description, plan

    def _plan(self, request: Request) -> tuple[MasqPlan | ForwardPlan, str | None]:
        if request.prev_result is None:
            raise CNIError(Code.INVALID_CONFIG, "must be called as chained plugin", f"{self.kind} needs prevResult")
        keys = validate_config(self.model, request.config, request.network_name, f"{self.kind} config")
        att = Attachment(request.network_name, request.container_id, request.ifname)
        return self.plan(keys, att, attachment_ips(request.prev_result, request.ifname).ips), keys.firewall

    def hooks(self) -> tuple[Callable[..., object], ...]:
        """``cni_plugin_info, cni_config_model, cni_add, cni_del, cni_check, cni_gc``, in that order."""
        return (self.cni_plugin_info, self.cni_config_model, self.cni_add, self.cni_del, self.cni_check,
                self.cni_gc)

    @hookimpl
    def cni_plugin_info(self) -> PluginInfo:
        return PluginInfo(description=self.description)

    @hookimpl
    def cni_config_model(self) -> type[PluginConfig]:
        return self.model

    @hookimpl
    def cni_add(self, request: Request) -> Result | None:
        plan, backend = self._plan(request)
        firewall.apply(plan, backend)
        return None

    @hookimpl
    def cni_del(self, request: Request) -> None:
        attachment = Attachment(request.network_name, request.container_id, request.ifname)
        keys = validate_config(FirewallConfig, request.config, request.network_name, f"{self.kind} config")
        firewall.delete(attachment, self.kind, keys.firewall)

    @hookimpl
    def cni_check(self, request: Request) -> None:
        plan, backend = self._plan(request)
        if plan.addresses:
            firewall.check(plan, backend)

    @hookimpl
    def cni_gc(self, request: Request) -> None:
        firewall.gc(request.network_name, request.valid_attachments, self.kind)


__all__ = [
    "ADD", "ALL_VERSIONS", "CHECK", "DEL", "DNS", "GC", "STATUS", "Attachment", "CNIError", "ChainedFirewallPlugin",
    "CniArgs", "FirewallConfig", "ReferenceConfig", "ReferenceIPAM", "unsupported",
    "Code", "FirewallBackend", "ForwardPlan", "IPAMSection", "IPConfig", "Interface", "Invocation",
    "LinkInfo", "LinkSpec", "MasqPlan", "NetlinkError", "Plan", "PluginConfig", "PluginInfo", "PortMapping",
    "PortmapPlan",
    "Request", "Result", "Route", "RouteSpec", "Rtnl", "add_address", "add_masquerade", "add_route", "bad_field",
    "convert", "del_masquerade", "delete_address", "enter_netns", "find_interface", "firewall",
    "get_link", "hookimpl", "in_pod_netns", "invalid_config", "iproute", "is_errno", "list_addresses",
    "list_routes", "netns_exists", "parse_result", "result_from_prev", "rtnl", "set_link", "set_up", "sysctl",
    "validate_config",
]
