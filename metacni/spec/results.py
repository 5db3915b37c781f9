"""CNI results: one in-memory model, three wire families, and conversion between versions.

The in-memory :class:`Result` carries every 1.1.0 field. A result "in version V" is a
``Result`` whose ``cni_version`` is V and whose content has been cut down to what V can
carry (see :func:`convert`). :meth:`Result.to_wire` emits the JSON shape of V's family and
:func:`parse_result` reads any family. The rules follow the Go reference library
(``pkg/types/{020,040,100}``, ``pkg/types/internal/convert.go``), including what is lost
going down to 0.2.0 and the conversions it refuses.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from . import versions
from .errors import CNIError, Code


def _cidr(value: str) -> str:
    try:
        return str(ipaddress.ip_interface(value))
    except ValueError as exc:
        raise ValueError(f"invalid CIDR address {value!r}") from exc


def _ip(value: str) -> str:
    try:
        return str(ipaddress.ip_address(value))
    except ValueError as exc:
        raise ValueError(f"invalid IP address {value!r}") from exc


def _net(value: str) -> str:
    """Route destinations keep host bits as written (Go's IPNet does), but are validated."""
    try:
        return str(ipaddress.ip_interface(value))
    except ValueError as exc:
        raise ValueError(f"invalid route destination {value!r}") from exc


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True, validate_assignment=False)


class Interface(_Model):
    name: str
    mac: str | None = None
    mtu: int | None = None
    sandbox: str | None = None
    socket_path: str | None = Field(default=None, alias="socketPath")
    pci_id: str | None = Field(default=None, alias="pciID")


class IPConfig(_Model):
    address: str
    gateway: str | None = None
    interface: int | None = None

    _check_address = field_validator("address")(classmethod(lambda cls, v: _cidr(v)))
    _check_gateway = field_validator("gateway")(
        classmethod(lambda cls, v: _ip(v) if v is not None else None)
    )

    @property
    def ip_version(self) -> int:
        return ipaddress.ip_interface(self.address).version


class Route(_Model):
    dst: str
    gw: str | None = None
    mtu: int | None = None
    advmss: int | None = None
    priority: int | None = None
    table: int | None = None
    scope: int | None = None

    _check_dst = field_validator("dst")(classmethod(lambda cls, v: _net(v)))
    _check_gw = field_validator("gw")(classmethod(lambda cls, v: _ip(v) if v is not None else None))

    @property
    def ip_version(self) -> int:
        return ipaddress.ip_interface(self.dst).version


class DNS(_Model):
    nameservers: list[str] | None = None
    domain: str | None = None
    search: list[str] | None = None
    options: list[str] | None = None

    def is_empty(self) -> bool:
        return not (self.nameservers or self.domain or self.search or self.options)


class Result(_Model):
    """A CNI result in memory. ``cni_version`` says which version's content it holds."""

    cni_version: str = Field(default=versions.CURRENT, alias="cniVersion")
    interfaces: list[Interface] = Field(default_factory=list)
    ips: list[IPConfig] = Field(default_factory=list)
    routes: list[Route] = Field(default_factory=list)
    dns: DNS = Field(default_factory=DNS)

    def to_wire(self) -> dict[str, Any]:
        """The JSON object of this result's family, with the reference library's key rules."""
        fam = versions.family(self.cni_version)
        if fam == versions.FAMILY_020:
            return _wire_020(self)
        out: dict[str, Any] = {"cniVersion": self.cni_version}
        if self.interfaces:
            keep = _IFACE_KEYS_040 if fam == versions.FAMILY_040 else None
            out["interfaces"] = [_iface_wire(i, keep) for i in self.interfaces]
        if self.ips:
            out["ips"] = [_ip_wire(ip, with_version=fam == versions.FAMILY_040) for ip in self.ips]
        if self.routes:
            out["routes"] = [_route_wire(r) for r in self.routes]
        # Go's result types always marshal dns (omitempty has no effect on a struct), in 1.x too:
        # the reference plugins print "dns": {} and so do we.
        out["dns"] = self.dns.model_dump(exclude_none=True)
        return out

    def convert(self, to_version: str) -> Result:
        return convert(self, to_version)


_IFACE_KEYS_040 = {"name", "mac", "sandbox"}


def _iface_wire(iface: Interface, keep: set[str] | None) -> dict[str, Any]:
    data = iface.model_dump(by_alias=True, exclude_none=True)
    if keep is not None:
        data = {k: v for k, v in data.items() if k in keep}
    return data


def _ip_wire(ip: IPConfig, with_version: bool) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if with_version:
        out["version"] = str(ip.ip_version)
    if ip.interface is not None:
        out["interface"] = ip.interface
    out["address"] = ip.address
    if ip.gateway is not None:
        out["gateway"] = ip.gateway
    return out


def _route_wire(route: Route) -> dict[str, Any]:
    return route.model_dump(exclude_none=True)


def _wire_020(result: Result) -> dict[str, Any]:
    out: dict[str, Any] = {"cniVersion": result.cni_version}
    for fam, key in ((4, "ip4"), (6, "ip6")):
        ip = next((i for i in result.ips if i.ip_version == fam), None)
        if ip is None:
            continue
        entry: dict[str, Any] = {"ip": ip.address}
        if ip.gateway is not None:
            entry["gateway"] = ip.gateway
        routes = [{k: v for k, v in (("dst", r.dst), ("gw", r.gw)) if v is not None}
                  for r in result.routes if r.ip_version == fam]
        if routes:
            entry["routes"] = routes
        out[key] = entry
    out["dns"] = result.dns.model_dump(exclude_none=True)
    return out


# --------------------------------------------------------------------------- parsing


class ResultParseError(CNIError):
    def __init__(self, details: str) -> None:
        super().__init__(Code.DECODE_FAILURE, "failed to decode result", details)


def parse_result(data: dict[str, Any], expected_version: str | None = None) -> Result:
    """Read a result of any family.

    A result without ``cniVersion`` takes ``expected_version`` (libcni's fixup). When
    ``expected_version`` is given, the result must belong to the same family, as Go's
    ``ParsePrevResult`` demands; the version label itself is kept.
    """
    if not isinstance(data, dict):
        raise ResultParseError(f"result must be a JSON object, got {type(data).__name__}")
    raw_version = data.get("cniVersion")
    if raw_version is not None and not isinstance(raw_version, str):
        raise ResultParseError("cniVersion must be a string")
    version = raw_version or (expected_version if expected_version is not None else "")
    version = versions.normalize(version)
    if not versions.is_known(version):
        raise CNIError(Code.INCOMPATIBLE_VERSION, "unsupported result version",
                       f"no result type for CNI version {version!r}")
    fam = versions.family(version)
    if expected_version is not None:
        expected = versions.normalize(expected_version)
        if versions.is_known(expected) and versions.family(expected) != fam:
            supported = [v for v in versions.ALL_VERSIONS if versions.family(v) == versions.family(expected)]
            raise ResultParseError(
                f"result type supports {supported} but unmarshalled CNIVersion is {version!r}"
            )
    try:
        if fam == versions.FAMILY_020:
            return _parse_020(data, version)
        body = {k: v for k, v in data.items() if k in ("interfaces", "ips", "routes", "dns")}
        for key in ("interfaces", "ips", "routes"):
            if body.get(key) is None:
                body.pop(key, None)
        if body.get("dns") is None:
            body.pop("dns", None)
        result = Result.model_validate({**body, "cniVersion": version})
    except ValidationError as exc:
        raise ResultParseError(_first_error(exc)) from None
    if fam == versions.FAMILY_040:
        # 0.4.0 interfaces cannot carry the 1.1 fields; drop them as Go's decoder would.
        result.interfaces = [Interface(name=i.name, mac=i.mac, sandbox=i.sandbox) for i in result.interfaces]
    return result


def _parse_020(data: dict[str, Any], version: str) -> Result:
    ips: list[IPConfig] = []
    routes: list[Route] = []
    for key in ("ip4", "ip6"):
        entry = data.get(key)
        if entry is None:
            continue
        if not isinstance(entry, dict) or "ip" not in entry:
            raise ResultParseError(f"{key} must be an object with an 'ip' field")
        ips.append(IPConfig(address=entry["ip"], gateway=entry.get("gateway")))
        for route in entry.get("routes") or []:
            routes.append(Route(dst=route["dst"], gw=route.get("gw")))
    dns = DNS.model_validate(data.get("dns") or {})
    return Result(cniVersion=version, ips=ips, routes=routes, dns=dns)


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    path = ".".join(str(p) for p in err["loc"])
    return f"{path}: {err['msg']}"


# --------------------------------------------------------------------------- conversion


def convert(result: Result, to_version: str) -> Result:
    """Return ``result`` as ``to_version`` would carry it (the reference converters' rules).

    Up: nothing is lost. 1.x -> 0.3/0.4: interface mtu/socketPath/pciID are dropped (routes
    keep their 1.1 fields, as Go's shared route type does). Anything -> 0.1/0.2: only the
    first IPv4 and first IPv6 survive, interfaces and interface indexes are lost, routes keep
    dst/gw and are dropped when their family has no address; a result without IPs is refused.
    """
    target = versions.normalize(to_version)
    source = versions.normalize(result.cni_version)
    if not versions.is_known(target) or not versions.is_known(source):
        raise CNIError(Code.INCOMPATIBLE_VERSION, "incompatible CNI versions",
                       f"no converter for CNI result version {source} to {target}")
    fam = versions.family(target)
    out = result.model_copy(deep=True)
    out.cni_version = target
    if fam == versions.FAMILY_100:
        return out
    out.interfaces = [Interface(name=i.name, mac=i.mac, sandbox=i.sandbox) for i in out.interfaces]
    if fam == versions.FAMILY_040:
        return out
    if not out.ips:
        raise CNIError(Code.INCOMPATIBLE_VERSION, "incompatible CNI versions",
                       f"cannot convert: no valid IP addresses (result version {source} to {target})")
    kept: list[IPConfig] = []
    for fam_ip in (4, 6):
        first = next((ip for ip in out.ips if ip.ip_version == fam_ip), None)
        if first is not None:
            kept.append(IPConfig(address=first.address, gateway=first.gateway))
    families = {ip.ip_version for ip in kept}
    out.ips = kept
    out.interfaces = []
    # 0.2.0 keeps routes under ip4/ip6, so their order becomes: IPv4 routes, then IPv6 routes.
    out.routes = [Route(dst=r.dst, gw=r.gw) for fam_ip in (4, 6) for r in out.routes
                  if r.ip_version == fam_ip and fam_ip in families]
    return out
