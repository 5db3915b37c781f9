"""From config + pod to the ordered list of delegates (one per attachment) to run.

Order (spec 6.2, Multus 2.5): primary first as CNI_IFNAME, then ``defaultNetworks``, then the
annotation's networks; every non-primary gets ``net<position>`` unless it names an interface.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from logging import getLogger
from pathlib import Path
from typing import TYPE_CHECKING

from metacni.spec import safejson
from metacni.spec.config import (
    CONF_EXTENSIONS,
    NetworkList,
    extension,
    network_list_from_bytes,
)
from metacni.spec.errors import CNIError, Code

from .annotations import NetworkSelection
from .conf_dir import candidate_files, find_file_by_name, first_candidate, is_meta_config, load_file
from .config import AUTO, MetaConfig
from .refusal import refused
from .selection_policy import check_selection
from .trust import refuse_meta_type, sanitize_tenant_config

if TYPE_CHECKING:
    from typing import Any

    from .kube import KubeView

log = getLogger(__name__)
RESOURCE_NAME = "k8s.v1.cni.cncf.io/resourceName"


@dataclass
class Delegate:
    """One attachment: the network to run, its interface, and what the pod asked for."""

    label: str  # network-status name: "<ns>/<nad>" for NADs, the CNI name for files
    net: NetworkList
    ifname: str
    primary: bool = False
    selection: NetworkSelection | None = None
    capability_args: dict[str, Any] = field(default_factory=dict)

    def fallback_args(self) -> list[tuple[str, str]]:
        """CNI_ARGS ``IP=``/``MAC=`` for a requested ``ips``/``mac`` that no plugin of the network
        declares as a capability: Multus (``pkg/multus/multus.go``) always sets them, so a NAD
        written for Multus (e.g. static IPAM without ``capabilities``) keeps working. When the
        capability is declared, runtimeConfig alone carries the request (no duplicate)."""
        sel = self.selection
        if sel is None:
            return []
        declared = declared_capabilities(self.net)
        out: list[tuple[str, str]] = []
        if sel.ips and "ips" not in declared:
            out.append(("IP", ",".join(sel.ips)))
        if sel.mac and "mac" not in declared:
            out.append(("MAC", sel.mac))
        return out


# ---------------------------------------------------------------------------- NADs
def nad_network(nad: dict[str, Any], cfg: MetaConfig, cni_args: dict[str, Any] | None = None) -> NetworkList:
    """The CNI config of a NAD: ``spec.config`` (name injected if missing) or, when empty, the
    conf-dir file named after the NAD. ``spec.config`` is tenant input: it passes
    :func:`.trust.sanitize_tenant_config` (no ``metacni`` type, no node-only keys, paths inside
    the node's ``allowedPaths``); a conf-dir file is the node's and is trusted."""
    meta = nad.get("metadata") or {}
    ns, name = meta.get("namespace", ""), meta.get("name", "")
    where = f"NetworkAttachmentDefinition {ns}/{name}"
    text = (nad.get("spec") or {}).get("config") or ""
    if not isinstance(text, str):
        raise CNIError(Code.INVALID_CONFIG, "invalid NetworkAttachmentDefinition",
                       f"{where}: spec.config is not a string")
    if not text.strip():
        net = find_file_by_name(cfg.conf_dir, name, cfg.own_file)
        if net is None:
            raise CNIError(Code.INVALID_CONFIG, "invalid NetworkAttachmentDefinition",
                           f"{where} has no spec.config and no file in {cfg.conf_dir} has name {name!r}")
        return _build(json.loads(net.raw), where, cni_args) if cni_args else net
    try:
        data = safejson.loads(text)  # tenant input: deep nesting and NaN are a ValueError too
    except ValueError as exc:
        raise CNIError(Code.INVALID_CONFIG, "invalid NetworkAttachmentDefinition",
                       f"{where}: spec.config is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise CNIError(Code.INVALID_CONFIG, "invalid NetworkAttachmentDefinition",
                       f"{where}: spec.config must be a JSON object")
    stripped = sanitize_tenant_config(data, where, cfg.policy, ns)
    if not data.get("name"):
        data["name"] = name
        return _build(data, where, cni_args)
    if cni_args or stripped:
        return _build(data, where, cni_args)
    return network_list_from_bytes(text.encode(), where)


def _build(data: dict[str, Any], where: str, cni_args: dict[str, Any] | None) -> NetworkList:
    if cni_args:
        plugins: list[Any] = data["plugins"] if isinstance(data.get("plugins"), list) else [data]
        for plugin in plugins:
            if isinstance(plugin, dict):
                args = plugin.setdefault("args", {})
                if isinstance(args, dict):
                    cni = args.setdefault("cni", {})
                    if isinstance(cni, dict):
                        cni.update(cni_args)  # the pod's request wins over the NAD
    return network_list_from_bytes(json.dumps(data).encode(), where)


def nad_resource_name(nad: dict[str, Any]) -> str:
    """The NAD's device-plugin resource (annotation ``k8s.v1.cni.cncf.io/resourceName``), "" if none."""
    annotations = (nad.get("metadata") or {}).get("annotations") or {}
    value = annotations.get(RESOURCE_NAME, "") if isinstance(annotations, dict) else ""
    return value.strip() if isinstance(value, str) else ""


def resolve_nad(view: KubeView | None, cfg: MetaConfig, namespace: str, name: str,
                cni_args: dict[str, Any] | None = None, resources: dict[str, str] | None = None) -> NetworkList:
    """The NAD's network; ``resources`` (when given) records its device-plugin resource name
    under ``<ns>/<name>`` (:mod:`.devices`)."""
    if view is None:
        raise CNIError(Code.INVALID_CONFIG, "no Kubernetes API configured",
                       f"NetworkAttachmentDefinition {namespace}/{name} is needed but the config has no "
                       "kubeconfig and this is not an in-cluster environment")
    nad = view.get_nad(namespace, name)
    if nad is None:
        raise CNIError(Code.INVALID_CONFIG, "network not found",
                       f"cannot find a network-attachment-definition ({name}) in namespace ({namespace})")
    if resources is not None:
        resources[f"{namespace}/{name}"] = nad_resource_name(nad)
    return nad_network(nad, cfg, cni_args)


# ---------------------------------------------------------------------------- primary
def resolve_reference(ref: str, cfg: MetaConfig, view: KubeView | None) -> tuple[str, NetworkList]:
    """clusterNetwork/defaultNetworks value → (status label, network).

    A path (contains '/') is a file or a directory (its first config); a bare name is, as
    Multus' ``getNetDelegate`` resolves it, a NAD in ``multusNamespace`` first, else a file in
    confDir with that CNI name. When the API cannot be asked (no view, or the GET fails) the
    file is used if there is one (Multus falls through on any error too), so a primary given
    as a file name still never depends on the API being up.
    """
    if "/" in ref:
        path: str | Path = ref  # as given: it is the delegate record's source
        if Path(ref).is_dir():
            files = candidate_files(path, cfg.own_file)
            if not files:
                raise CNIError(Code.TRY_AGAIN_LATER, "primary network not ready",
                               f"no network configuration file in {path}")
            path = files[0]
        if is_meta_config(path, cfg.own_file):
            raise CNIError(Code.INVALID_CONFIG, "invalid metacni configuration",
                           f"network {ref!r} is a metacni configuration; it cannot delegate to itself")
        net = load_file(path)
        return net.name, net
    if extension(ref) in CONF_EXTENSIONS and Path(cfg.conf_dir, ref).is_file():
        return resolve_reference(str(Path(cfg.conf_dir, ref)), cfg, view)
    ns = cfg.multus_namespace
    api_error: CNIError | None = None
    if view is not None:
        try:
            nad = view.get_nad(ns, ref)
        except CNIError as exc:
            nad, api_error = None, exc
        if nad is not None:
            return f"{ns}/{ref}", nad_network(nad, cfg)
    net_or_none = find_file_by_name(cfg.conf_dir, ref, cfg.own_file)
    if net_or_none is not None:
        if api_error is not None:
            log.warning("NAD %s/%s could not be read (%s); using the file named %r", ns, ref, api_error, ref)
        return net_or_none.name, net_or_none
    if api_error is not None:
        raise api_error
    return f"{ns}/{ref}", resolve_nad(view, cfg, ns, ref)


def extra_delegates(cfg: MetaConfig, override: NetworkSelection | None) -> list[Delegate]:
    """``delegates[1:]``: attached after the primary, as Multus does when ``clusterNetwork`` is
    unset (it then loads every entry and flags only ``delegates[0]`` master; a per-pod default
    network replaces only ``delegates[0]``). With ``clusterNetwork`` set, Multus ignores
    ``delegates`` entirely, and so do we. Each gets ``net<position>`` like any secondary."""
    if cfg.cluster_network and cfg.cluster_network != AUTO:
        return []
    out: list[Delegate] = []
    for index, conf in enumerate(cfg.delegates[1:], start=1):
        where = f"delegates[{index}]"
        refuse_meta_type(conf, where)
        net = network_list_from_bytes(json.dumps(conf).encode(), where)
        out.append(Delegate(label=net.name, net=net, ifname=""))
    return out


def resolve_primary(cfg: MetaConfig, view: KubeView | None,
                    override: NetworkSelection | None = None) -> tuple[str, NetworkList]:
    if override is not None:
        return override.ref, resolve_nad(view, cfg, override.namespace, override.name, override.cni_args)
    if cfg.cluster_network and cfg.cluster_network != AUTO:
        return resolve_reference(cfg.cluster_network, cfg, view)
    if cfg.delegates:
        refuse_meta_type(cfg.delegates[0], "delegates[0]")
        net = network_list_from_bytes(json.dumps(cfg.delegates[0]).encode(), "delegates[0]")
        return net.name, net
    primary = first_candidate(cfg.conf_dir, cfg.own_file)
    if primary is None:
        raise CNIError(Code.TRY_AGAIN_LATER, "primary network not ready",
                       f"no network configuration other than metacni's in {cfg.conf_dir}")
    return primary.name, primary


# ---------------------------------------------------------------------------- the list
def declared_capabilities(net: NetworkList) -> set[str]:
    """The capabilities some plugin of ``net`` declares (``true``)."""
    return {name for plugin in net.plugins if isinstance(plugin.get("capabilities"), dict)
            for name, on in plugin["capabilities"].items() if on is True}


#: Requests that travel in CNI_ARGS when undeclared (:meth:`Delegate.fallback_args`), as Multus.
ARGS_FALLBACK = frozenset({"ips", "mac"})


def _check_capabilities(net: NetworkList, sel: NetworkSelection) -> None:
    """NPWG spec: a requested capability must be declared by some plugin of the attachment, or
    the request fails (Multus passes it on and libcni silently drops it). Exception: ``ips``
    and ``mac`` fall back to CNI_ARGS ``IP=``/``MAC=`` as in Multus."""
    declared = declared_capabilities(net)
    missing = sorted(set(sel.capability_args()) - declared - ARGS_FALLBACK)
    if missing:
        raise CNIError(Code.INVALID_CONFIG, "capability not supported by network",
                       f"network {sel.ref} requests {', '.join(missing)} but no plugin of network "
                       f"{net.name!r} declares {'them' if len(missing) > 1 else 'it'} in 'capabilities'")



def _check_override(cfg: MetaConfig, override: NetworkSelection, pod_namespace: str) -> None:
    """The default-network override is a reference like any other: namespaceIsolation applies
    (its bare form names a NAD of ``multusNamespace``, the operator's, which is always allowed),
    and what it requests obeys the node policy."""
    if override.namespace != cfg.multus_namespace and not cfg.may_use(pod_namespace, override.namespace):
        raise CNIError(Code.INVALID_CONFIG, "namespace isolation violation",
                       f"default network {override.ref} is in namespace {override.namespace!r}; with "
                       f"namespaceIsolation a pod in {pod_namespace!r} may only use its own namespace, "
                       f"{cfg.multus_namespace!r} or {cfg.global_namespaces}")
    check_selection(override, pod_namespace=pod_namespace,
                    global_namespaces=[*cfg.global_namespaces, cfg.multus_namespace], policy=cfg.policy,
                    what="default network")


def check_own_name(net: NetworkList, label: str, node_networks: dict[str, str]) -> None:
    """Code 7 when a NAD's network has the CNI name of one of the pod's node networks (name ->
    label): host-local keeps leases per name, so a tenant could exhaust the primary's pool."""
    if net.name in node_networks:
        raise refused(f"network {label}: its CNI name {net.name!r} is the name of the node's network "
                      f"{node_networks[net.name]} (it would share its address pool and state); rename the "
                      "NAD's config \"name\"")


def node_network_names(cfg: MetaConfig, view: KubeView | None,
                       primary: tuple[str, NetworkList] | None = None) -> dict[str, str]:
    """CNI name -> label of the node's own networks: its primary (``primary`` when the caller
    resolved it already), its ``delegates`` and every ``defaultNetworks`` entry, whatever a
    pod's default-network override or opt-out says (their host-local pools and state are the
    node's, not the pod's). One that cannot be resolved now (a missing file, an absent NAD)
    holds no state a tenant could take, and is left out."""
    names: dict[str, str] = {}
    for ref in [None, *cfg.default_networks]:
        try:
            if ref is None:
                label, net = primary or resolve_primary(cfg, view)
            else:
                label, net = resolve_reference(ref, cfg, view)
        except CNIError as exc:
            log.debug("node network not resolvable for the name check: %s", exc)
            continue
        names.setdefault(net.name, label)
    try:
        extra = extra_delegates(cfg, None)
    except CNIError as exc:
        log.debug("node delegates not resolvable for the name check: %s", exc)
        extra = []
    for d in extra:
        names.setdefault(d.net.name, d.label)
    return names


def assign_ifnames(delegates: list[Delegate]) -> None:
    """net<index> for unnamed non-primaries; duplicate names are an error."""
    seen: dict[str, str] = {}
    for index, d in enumerate(delegates):
        if not d.ifname:
            d.ifname = f"net{index}"
        if d.ifname in seen:
            raise CNIError(Code.INVALID_CONFIG, "duplicate interface name",
                           f"interface {d.ifname!r} is requested by both {seen[d.ifname]} and {d.label}")
        seen[d.ifname] = d.label


def build_delegates(cfg: MetaConfig, view: KubeView | None, *, pod_namespace: str, runtime_ifname: str,
                    runtime_caps: dict[str, Any], selections: list[NetworkSelection],
                    override: NetworkSelection | None, with_default_networks: bool,
                    resources: dict[str, str] | None = None) -> list[Delegate]:
    if override is not None:
        _check_override(cfg, override, pod_namespace)
    label, primary = resolve_primary(cfg, view, override)
    delegates = [Delegate(label=label, net=primary, ifname=runtime_ifname, primary=True,
                          selection=override, capability_args=dict(runtime_caps))]
    shared = {k: v for k, v in runtime_caps.items() if k.lower() == "io.kubernetes.cri.pod-annotations"}
    for extra in extra_delegates(cfg, override):
        extra.capability_args = dict(shared)
        delegates.append(extra)
    if with_default_networks:
        for ref in cfg.default_networks:
            d_label, net = resolve_reference(ref, cfg, view)
            delegates.append(Delegate(label=d_label, net=net, ifname="", capability_args=dict(shared)))
    if override is None and with_default_networks:
        node_networks = {d.net.name: d.label for d in delegates}  # all of them, resolved above
    else:  # the node primary is resolved already unless the pod replaced it
        node_networks = node_network_names(cfg, view, (label, primary) if override is None else None)
    if override is not None and override.namespace != cfg.multus_namespace:
        check_own_name(primary, override.ref, node_networks)
    for sel in selections:
        if not cfg.may_use(pod_namespace, sel.namespace):
            raise CNIError(Code.INVALID_CONFIG, "namespace isolation violation",
                           f"network {sel.ref} is in namespace {sel.namespace!r}; with namespaceIsolation a pod "
                           f"in {pod_namespace!r} may only use its own namespace or {cfg.global_namespaces}")
        check_selection(sel, pod_namespace=pod_namespace, global_namespaces=cfg.global_namespaces,
                        policy=cfg.policy)
        net = resolve_nad(view, cfg, sel.namespace, sel.name, sel.cni_args, resources)
        check_own_name(net, sel.ref, node_networks)
        caps = dict(shared)
        caps.update(sel.capability_args())
        _check_capabilities(net, sel)
        delegates.append(Delegate(label=sel.ref, net=net, ifname=sel.interface or "", selection=sel,
                                  capability_args=caps))
    assign_ifnames(delegates)
    return delegates
