"""What a feature wants installed, independent of the backend, and the input parsers.

Everything a plugin receives is parsed and validated here *before* any backend is
touched, so a bad field is a CNIError code 7 naming it and nothing gets installed.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from metacni.spec.errors import CNIError, Code

from .identity import Attachment

if TYPE_CHECKING:
    from typing import Any

PORTMAP, MASQ, FORWARD = "portmap", "masq", "forward"
PROTOCOLS = ("tcp", "udp", "sctp")
IPInterface = ipaddress.IPv4Interface | ipaddress.IPv6Interface
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def bad(field_name: str, problem: str) -> CNIError:
    return CNIError(Code.INVALID_CONFIG, f"invalid {field_name}", f"{field_name}: {problem}")


@dataclass(frozen=True)
class PortMapping:
    host_port: int
    container_port: int
    protocol: str
    host_ip: ipaddress.IPv4Address | ipaddress.IPv6Address | None = None

    @property
    def any_host_ip(self) -> bool:
        return self.host_ip is None or self.host_ip.is_unspecified

    def applies_to(self, version: int) -> bool:
        """A mapping whose hostIP is of the other family is skipped for this family."""
        return self.host_ip is None or self.host_ip.version == version


@dataclass(frozen=True)
class PortmapPlan:
    attachment: Attachment
    mappings: tuple[PortMapping, ...]
    ipv4: ipaddress.IPv4Interface | None = None
    ipv6: ipaddress.IPv6Interface | None = None
    snat: bool = True
    masq_all: bool = False
    mark_bit: int = 13
    external_mark_chain: str | None = None
    conditions_v4: tuple[str, ...] = ()
    conditions_v6: tuple[str, ...] = ()
    kind: str = PORTMAP

    def container_ips(self) -> list[IPInterface]:
        return [ip for ip in (self.ipv4, self.ipv6) if ip is not None]

    @property
    def empty(self) -> bool:
        """Nothing to install (no mapping, or no address to map to)."""
        return not self.mappings or not self.container_ips()

    def mappings_for(self, version: int) -> list[PortMapping]:
        return [m for m in self.mappings if m.applies_to(version)]

    @property
    def mark(self) -> int:
        return 1 << self.mark_bit


@dataclass(frozen=True)
class MasqPlan:
    attachment: Attachment
    addresses: tuple[IPInterface, ...]
    non_masquerade: tuple[IPNetwork, ...] = ()
    kind: str = MASQ

    @property
    def empty(self) -> bool:
        return not self.addresses

    def exempt_for(self, ip: IPInterface) -> list[IPNetwork]:
        """The destinations this source is not masqueraded for: its subnet and the extra CIDRs."""
        nets: list[IPNetwork] = [ip.network]
        nets += [n for n in self.non_masquerade if n.version == ip.version and n not in nets]
        return nets


@dataclass(frozen=True)
class ForwardPlan:
    attachment: Attachment
    addresses: tuple[IPInterface, ...]
    kind: str = FORWARD

    @property
    def empty(self) -> bool:
        return not self.addresses


Plan = PortmapPlan | MasqPlan | ForwardPlan


# ---------------------------------------------------------------------- parsers
def _int_field(value: Any, name: str, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise bad(name, f"{value!r} is not an integer")
    try:
        number = int(value)
    except ValueError:
        raise bad(name, f"{value!r} is not an integer") from None
    if not lo <= number <= hi:
        raise bad(name, f"{number} is not in {lo}-{hi}")
    return number


def parse_port_mapping(raw: Any, where: str) -> PortMapping:
    """One ``portMappings`` entry; keys are matched case-insensitively (containerd's casing)."""
    if not isinstance(raw, Mapping):
        raise bad(where, f"expected an object, got {type(raw).__name__}")
    keys = {str(k).lower(): v for k, v in raw.items()}
    if "hostport" not in keys:
        raise bad(f"{where}.hostPort", "missing")
    if "containerport" not in keys:
        raise bad(f"{where}.containerPort", "missing")
    host_port = _int_field(keys["hostport"], f"{where}.hostPort", 1, 65535)
    container_port = _int_field(keys["containerport"], f"{where}.containerPort", 1, 65535)
    proto_raw = keys.get("protocol") or "tcp"
    if not isinstance(proto_raw, str) or proto_raw.lower() not in PROTOCOLS:
        raise bad(f"{where}.protocol", f"{proto_raw!r} is not one of {', '.join(PROTOCOLS)}")
    host_ip_raw = keys.get("hostip") or None
    host_ip = None
    if host_ip_raw is not None:
        try:
            host_ip = ipaddress.ip_address(str(host_ip_raw))
        except ValueError:
            raise bad(f"{where}.hostIP", f"{host_ip_raw!r} is not an IP address") from None
    return PortMapping(host_port, container_port, proto_raw.lower(), host_ip)


def parse_port_mappings(raw: Any, where: str = "runtimeConfig.portMappings") -> tuple[PortMapping, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise bad(where, f"expected a list, got {type(raw).__name__}")
    out: list[PortMapping] = []
    seen: dict[tuple[int, str, object], PortMapping] = {}
    for i, item in enumerate(raw):
        mapping = parse_port_mapping(item, f"{where}[{i}]")
        key = (mapping.host_port, mapping.protocol, mapping.host_ip)
        if key in seen and seen[key] != mapping:
            raise bad(
                f"{where}[{i}].hostPort",
                f"{mapping.protocol} port {mapping.host_port} is already mapped by another entry",
            )
        if key not in seen:
            seen[key] = mapping
            out.append(mapping)
    return tuple(out)


def check_host_ip_families(
    mappings: Iterable[PortMapping], versions: set[int], where: str = "runtimeConfig.portMappings"
) -> None:
    """A hostIP must be of a family the pod has an address of, else nothing would be mapped."""
    for i, m in enumerate(mappings):
        if m.host_ip is not None and not m.host_ip.is_unspecified and m.host_ip.version not in versions:
            have = "/".join(f"IPv{v}" for v in sorted(versions)) or "no"
            raise bad(
                f"{where}[{i}].hostIP",
                f"{m.host_ip} is IPv{m.host_ip.version} but the pod has {have} addresses",
            )


def parse_cidrs(raw: Any, where: str) -> tuple[IPNetwork, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise bad(where, f"expected a list of CIDRs, got {type(raw).__name__}")
    out: list[IPNetwork] = []
    for i, item in enumerate(raw):
        try:
            out.append(ipaddress.ip_network(str(item), strict=False))
        except ValueError:
            raise bad(f"{where}[{i}]", f"{item!r} is not a CIDR") from None
    return tuple(out)


def parse_addresses(raw: Iterable[str], where: str = "addresses") -> tuple[IPInterface, ...]:
    out: list[IPInterface] = []
    for i, item in enumerate(raw):
        text = str(item)
        try:
            iface = ipaddress.ip_interface(text)
        except ValueError:
            raise bad(f"{where}[{i}]", f"{item!r} is not an address") from None
        if "/" not in text:  # a bare address: assume a host route, as the reference does
            iface = ipaddress.ip_interface(f"{iface.ip}/{iface.max_prefixlen}")
        out.append(iface)
    return tuple(out)


@dataclass(frozen=True)
class AttachmentIPs:
    """The addresses prevResult gives this attachment (ifname in the sandbox, or unlabelled)."""

    ips: tuple[IPInterface, ...] = field(default_factory=tuple)

    def first(self, version: int) -> IPInterface | None:
        return next((ip for ip in self.ips if ip.version == version), None)


def attachment_ips(prev_result: Any, ifname: str) -> AttachmentIPs:
    """The reference rule: skip an IP whose ``interface`` is not CNI_IFNAME or has no sandbox."""
    if prev_result is None:
        return AttachmentIPs()
    out: list[IPInterface] = []
    interfaces = list(getattr(prev_result, "interfaces", []) or [])
    for ipc in getattr(prev_result, "ips", []) or []:
        idx = getattr(ipc, "interface", None)
        if idx is not None:
            if not 0 <= idx < len(interfaces):
                continue
            iface = interfaces[idx]
            if iface.name != ifname or not iface.sandbox:
                continue
        out.append(ipaddress.ip_interface(ipc.address))
    return AttachmentIPs(tuple(out))
