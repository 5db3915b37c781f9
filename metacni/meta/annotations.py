"""The pod's ``k8s.v1.cni.cncf.io/networks`` annotation (NPWG multi-net spec), parsed and validated.

Two forms: the comma form ``[ns/]name[@ifname], ...`` and a JSON list of selection objects.
Like Multus, anything invalid fails the pod's ADD (the spec would ignore the element; a pod
silently missing a network is worse than one that does not start). Interface names follow
the kernel's rule (<= 15 bytes, no '/', ':' or whitespace), not DNS-1123, as Multus does.

Multus parity (docs/operations.md, "Migrating from Multus"): ``name@`` (an empty interface
part) means "name it for me", as Multus' ``parsePodNetworkObjectName`` does; the JSON form's
``name`` is a Kubernetes object name (a DNS-1123 *subdomain*, dots allowed), since Multus does
not restrict it further there. The comma form keeps Multus' DNS-1123 label rule.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from metacni.spec import naming, safejson
from metacni.spec.errors import CNIError, Code

if TYPE_CHECKING:
    from typing import Any

NETWORKS = "k8s.v1.cni.cncf.io/networks"
DEFAULT_NETWORK = "v1.multus-cni.io/default-network"
#: Per-pod opt-out of the config's ``defaultNetworks`` (Multus #1187); value "true".
SKIP_DEFAULT_NETWORKS = "v1.metacni.io/skip-default-networks"

# Patterns, not compiled ones: ``re`` compiles (and caches) them on first use, so a pod without
# network annotations does not pay ~0.5 ms of regex compilation at import.
_DNS1123_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
_DNS1123_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
_MAC_COLON = r"^[0-9a-fA-F]{2}([:-])[0-9a-fA-F]{2}(\1[0-9a-fA-F]{2})*$"
_MAC_DOT = r"^[0-9a-fA-F]{4}(\.[0-9a-fA-F]{4})*$"


class AnnotationError(CNIError):
    """An invalid selection annotation: code 7, details name the problem."""

    def __init__(self, details: str) -> None:
        super().__init__(Code.INVALID_CONFIG, "invalid network selection annotation", details)


@dataclass
class NetworkSelection:
    """One requested attachment. Optional fields are None when the pod did not ask."""

    name: str
    namespace: str
    interface: str | None = None
    ips: list[str] | None = None
    mac: str | None = None
    infiniband_guid: str | None = None
    default_route: list[str] | None = None
    port_mappings: list[Any] | None = None
    bandwidth: dict[str, Any] | None = None
    cni_args: dict[str, Any] | None = None
    device_id: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ref(self) -> str:
        return f"{self.namespace}/{self.name}"

    def capability_args(self) -> dict[str, Any]:
        """The runtimeConfig this attachment asks for (libcni keeps only declared capabilities)."""
        out: dict[str, Any] = {}
        for key, value in (("ips", self.ips), ("mac", self.mac), ("infinibandGUID", self.infiniband_guid),
                           ("portMappings", self.port_mappings), ("bandwidth", self.bandwidth),
                           ("deviceID", self.device_id)):
            if value is not None:
                out[key] = value
        return out

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "namespace": self.namespace}
        for key, value in (("interface", self.interface), ("ips", self.ips), ("mac", self.mac),
                           ("infiniband-guid", self.infiniband_guid), ("default-route", self.default_route),
                           ("portMappings", self.port_mappings), ("bandwidth", self.bandwidth),
                           ("cni-args", self.cni_args), ("deviceID", self.device_id)):
            if value is not None:
                out[key] = value
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> NetworkSelection:
        """Inverse of ``to_json`` (the delegate cache); input was validated when first parsed."""
        return _element(data, str(data.get("namespace", "")), 0)


def is_json_form(value: str) -> bool:
    return any(ch in value for ch in '[{"')


def parse_networks(value: str | None, pod_namespace: str) -> list[NetworkSelection]:
    """Parse the annotation value; an empty or absent value means no extra networks."""
    text = (value or "").strip()
    if not text:
        return []
    selections = _parse_json(text, pod_namespace) if is_json_form(text) else _parse_comma(text, pod_namespace)
    check_selections(selections)
    return selections


def check_selections(selections: list[NetworkSelection]) -> None:
    """Rules that span elements: one default-route gateway per family (no ECMP)."""
    seen: dict[int, str] = {}
    for sel in selections:
        for gw in sel.default_route or []:
            family = ipaddress.ip_address(gw).version
            if family in seen:
                raise AnnotationError(f"default-route: more than one IPv{family} gateway ({seen[family]} and "
                                      f"{gw} on {sel.ref}); ECMP default routes are not supported")
            seen[family] = f"{gw} on {sel.ref}"


def _check_label(value: str, what: str, item: str) -> None:
    if not re.fullmatch(_DNS1123_LABEL, value) or len(value) > 63:
        raise AnnotationError(f"{item!r}: {what} {value!r} is not a valid DNS-1123 label "
                              "(lower-case alphanumerics and '-', starting and ending alphanumeric, <= 63 chars)")


def _check_subdomain(value: str, item: str) -> None:
    """An object name as the API server accepts it (NAD names may contain dots)."""
    if not re.fullmatch(_DNS1123_SUBDOMAIN, value) or len(value) > 253:
        raise AnnotationError(f"{item!r}: network name {value!r} is not a valid DNS-1123 subdomain "
                              "(lower-case alphanumerics, '-' and '.', each part starting and ending "
                              "alphanumeric, <= 253 chars)")


def _check_ifname(value: str, item: str) -> None:
    problem = naming.ifname_problem(value)
    if problem:
        raise AnnotationError(f"{item!r}: interface name {value!r} {problem}")


def _parse_comma(text: str, pod_namespace: str) -> list[NetworkSelection]:
    out: list[NetworkSelection] = []
    for raw in text.split(","):
        item = raw.strip()
        if not item:
            continue
        if item.count("/") > 1:
            raise AnnotationError(f"{item!r}: more than one '/' (expected [namespace/]name[@interface])")
        if item.count("@") > 1:
            raise AnnotationError(f"{item!r}: more than one '@' (expected [namespace/]name[@interface])")
        namespace, _, rest = item.rpartition("/")
        name, at, ifname = rest.partition("@")
        namespace, name, ifname = namespace.strip(), name.strip(), ifname.strip()
        if not name:
            raise AnnotationError(f"{item!r}: empty network name")
        _check_label(name, "network name", item)
        if namespace:
            _check_label(namespace, "namespace", item)
        if ifname:  # "name@" is Multus' "name it for me": the same as no '@'
            _check_ifname(ifname, item)
        out.append(NetworkSelection(name=name, namespace=namespace or pod_namespace,
                                    interface=ifname or None))
    return out


def _parse_json(text: str, pod_namespace: str) -> list[NetworkSelection]:
    try:
        data = safejson.loads(text)
    except ValueError as exc:
        raise AnnotationError(f"not valid JSON: {exc}") from None
    if isinstance(data, dict):
        data = [data]  # a single object: accepted, as the NAD client library does
    if not isinstance(data, list):
        raise AnnotationError("JSON form must be a list of network selection objects")
    return [_element(item, pod_namespace, i) for i, item in enumerate(data)]


def _string(data: dict[str, Any], key: str, where: str) -> str | None:
    value = data.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise AnnotationError(f"{where}: {key!r} must be a string, got {type(value).__name__}")
    return value


def _element(data: Any, pod_namespace: str, index: int) -> NetworkSelection:
    where = f"element [{index}]"
    if not isinstance(data, dict):
        raise AnnotationError(f"{where}: must be an object, got {type(data).__name__}")
    name = _string(data, "name", where)
    if not name:
        raise AnnotationError(f"{where}: 'name' is required")
    where = f"element [{index}] ({name})"
    _check_subdomain(name, name)
    namespace = _string(data, "namespace", where) or pod_namespace
    _check_label(namespace, "namespace", f"{namespace}/{name}")
    interface = _string(data, "interface", where)
    if interface is None:
        interface = _string(data, "interfaceRequest", where)  # legacy key
    if interface == "":
        interface = None  # Multus: an empty interface request means "name it for me"
    if interface is not None:
        _check_ifname(interface, f"{namespace}/{name}")
    sel = NetworkSelection(name=name, namespace=namespace, interface=interface)
    where = f"{namespace}/{name}"
    sel.ips = _ip_list(data, "ips", where, allow_cidr=True)
    sel.default_route = _ip_list(data, "default-route", where, allow_cidr=False)
    sel.mac = _mac(data, "mac", where, (6, 8, 20))
    sel.infiniband_guid = _mac(data, "infiniband-guid", where, (6, 8, 20))
    sel.device_id = _string(data, "deviceID", where)
    if data.get("portMappings") is not None:
        mappings = data["portMappings"]
        if not isinstance(mappings, list) or not all(isinstance(m, dict) for m in mappings):
            raise AnnotationError(f"{where}: 'portMappings' must be a list of objects")
        sel.port_mappings = mappings
    for key, attr in (("bandwidth", "bandwidth"), ("cni-args", "cni_args")):
        value = data.get(key)
        if value is not None:
            if not isinstance(value, dict):
                raise AnnotationError(f"{where}: {key!r} must be an object")
            setattr(sel, attr, value)
    known = {"name", "namespace", "interface", "interfaceRequest", "ips", "default-route", "mac",
             "infiniband-guid", "deviceID", "portMappings", "bandwidth", "cni-args"}
    sel.extra = {k: v for k, v in data.items() if k not in known}
    return sel


def _ip_list(data: dict[str, Any], key: str, where: str, *, allow_cidr: bool) -> list[str] | None:
    value = data.get(key)
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise AnnotationError(f"{where}: {key!r} must be a list of strings")
    for item in value:
        try:
            if allow_cidr and "/" in item:
                ipaddress.ip_interface(item)
            else:
                ipaddress.ip_address(item)
        except ValueError:
            kind = "an IP address or CIDR" if allow_cidr else "an IP address"
            raise AnnotationError(f"{where}: {key!r} entry {item!r} is not {kind}") from None
    return list(value)


def _mac(data: dict[str, Any], key: str, where: str, sizes: tuple[int, ...]) -> str | None:
    value = _string(data, key, where)
    if value is None:
        return None
    if re.fullmatch(_MAC_COLON, value):
        size = len(re.split(r"[:-]", value))
    elif re.fullmatch(_MAC_DOT, value):
        size = len(value.split(".")) * 2
    else:
        size = -1
    if size not in sizes:
        raise AnnotationError(f"{where}: {key!r} value {value!r} is not a hardware address")
    return value


def parse_default_network(value: str | None, default_namespace: str) -> NetworkSelection | None:
    """The per-pod primary override: same syntax, exactly one element."""
    if value is None or not value.strip():
        return None
    selections = parse_networks(value, default_namespace)
    if len(selections) != 1:
        raise AnnotationError(f"{DEFAULT_NETWORK} must name exactly one network, got {len(selections)}")
    return selections[0]
