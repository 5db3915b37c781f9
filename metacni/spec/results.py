"""CNI results: one in-memory model, three wire families, and conversion between versions.

The in-memory :class:`Result` carries every 1.1.0 field. A result "in version V" is a
``Result`` whose ``cni_version`` is V and whose content has been cut down to what V can
carry (see :func:`convert`). :meth:`Result.to_wire` emits the JSON shape of V's family and
:func:`parse_result` reads any family. The rules follow the Go reference library
(``pkg/types/{020,040,100}``, ``pkg/types/internal/convert.go``), including what is lost
going down to 0.2.0 and the conversions it refuses.

Above 400 lines on purpose: the model, its three wire families and the conversions between
them are one table of rules; split, each family would import the others' internals.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from . import versions
from .check import DICT, LIST, Invalid, opt_int, opt_str, opt_str_list, strict_str
from .errors import CNIError, Code
from .models import REASONS


@functools.lru_cache(maxsize=2048)
def _canonical(text: str, with_prefix: bool) -> str:
    """ipaddress's canonical text; cached, as a daemon sees the same gateways and routes on
    every call. Invalid text raises ValueError."""
    return str(ipaddress.ip_interface(text) if with_prefix else ipaddress.ip_address(text))


def _address(value: Any, key: str, with_prefix: bool, what: str) -> str:
    text = strict_str(value, key)
    try:
        return _canonical(text, with_prefix)
    except ValueError:
        raise Invalid((key,), f"invalid {what} {value!r}") from None


def _family(text: str) -> int:
    """IP version of a canonical address or CIDR (IPv6 text always has a colon, IPv4 never)."""
    return 6 if ":" in text else 4


def _invalid(exc: ValidationError) -> Invalid:
    """The first error of a failed validation as an :class:`Invalid` located by JSON path.
    A validator's own ``Invalid`` keeps its reason and any location below the field."""
    err = exc.errors()[0]
    loc = tuple(part for part in err["loc"] if isinstance(part, int) or not (
        part.startswith("function-") or "[" in part))
    cause = (err.get("ctx") or {}).get("error")
    if isinstance(cause, Invalid):  # a field validator's (located at its field) or a nested model's
        below = cause.loc[1:] if loc[-1:] == cause.loc[:1] else cause.loc
        return Invalid((*loc, *below), cause.reason)
    return Invalid(loc, REASONS.get(err["type"], err["msg"]))


class _Wire(BaseModel):
    """A wire type: pydantic models whose values are checked and normalised by the spec's own
    rules (addresses canonicalised, integers read laxly, strings strictly), and whose errors are
    :class:`~metacni.spec.check.Invalid`, a ``ValueError`` naming the JSON path of the first
    problem. Keys are read by JSON name or field name; unknown keys are ignored. Assignment is
    not checked (pydantic's default)."""

    model_config = ConfigDict(populate_by_name=True, extra="ignore")

    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as exc:
            raise _invalid(exc) from None

    @classmethod
    def model_validate(cls, obj: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(obj, cls):
            return obj
        if not isinstance(obj, Mapping):
            raise Invalid((), DICT)
        try:
            return super().model_validate(dict(obj), *args, **kwargs)
        except ValidationError as exc:
            raise _invalid(exc) from None


def _int_fields(*names: str) -> Any:
    return field_validator(*names, mode="before")(lambda value, info: opt_int(value, info.field_name))


def _cidr_field(name: str, what: str) -> Any:
    return field_validator(name, mode="before")(lambda value: _address(value, name, True, what))


def _ip_fields(*names: str) -> Any:
    return field_validator(*names, mode="before")(
        lambda value, info: None if value is None else _address(value, info.field_name, False, "IP address"))


def _str_fields(*names: str) -> Any:
    return field_validator(*names, mode="before")(lambda value, info: opt_str(value, info.field_name))


class Interface(_Wire):
    name: str
    mac: str | None = None
    mtu: int | None = None
    sandbox: str | None = None
    socket_path: str | None = Field(default=None, alias="socketPath")
    pci_id: str | None = Field(default=None, alias="pciID")

    _ints = _int_fields("mtu")
    _strs = _str_fields("mac", "sandbox", "socket_path", "pci_id")

    @field_validator("name", mode="before")
    @classmethod
    def _name(cls, value: Any) -> str:
        return strict_str(value, "name")


class IPConfig(_Wire):
    address: str
    gateway: str | None = None
    interface: int | None = None

    _ints = _int_fields("interface")
    _cidr = _cidr_field("address", "CIDR address")
    _ips = _ip_fields("gateway")

    @property
    def ip_version(self) -> int:
        return _family(self.address)


class Route(_Wire):
    dst: str
    gw: str | None = None
    mtu: int | None = None
    advmss: int | None = None
    priority: int | None = None
    table: int | None = None
    scope: int | None = None

    _ints = _int_fields("mtu", "advmss", "priority", "table", "scope")
    # destinations keep host bits as written (Go's IPNet does), but are validated
    _cidr = _cidr_field("dst", "route destination")
    _ips = _ip_fields("gw")

    @property
    def ip_version(self) -> int:
        return _family(self.dst)


class DNS(_Wire):
    nameservers: list[str] | None = None
    domain: str | None = None
    search: list[str] | None = None
    options: list[str] | None = None

    _strs = _str_fields("domain")

    @field_validator("nameservers", "search", "options", mode="before")
    @classmethod
    def _lists(cls, value: Any, info: Any) -> list[str] | None:
        return opt_str_list(value, info.field_name)

    def is_empty(self) -> bool:
        return not (self.nameservers or self.domain or self.search or self.options)


class Result(_Wire):
    """A CNI result in memory. ``cni_version`` says which version's content it holds."""

    # Nested models are validated through their ``__init__`` (pydantic calls a custom one), so
    # an error deep in a result is an Invalid located from the result's root.

    cni_version: str = Field(versions.CURRENT, alias="cniVersion")
    interfaces: list[Interface] = Field(default_factory=list)
    ips: list[IPConfig] = Field(default_factory=list)
    routes: list[Route] = Field(default_factory=list)
    dns: DNS = Field(default_factory=DNS)

    @field_validator("cni_version", mode="before")
    @classmethod
    def _version(cls, value: Any) -> str:
        return versions.CURRENT if value is None else strict_str(value, "cniVersion")

    @field_validator("interfaces", "ips", "routes", mode="before")
    @classmethod
    def _list(cls, value: Any) -> Any:
        return [] if value is None else list(value) if isinstance(value, tuple) else value

    @field_validator("dns", mode="before")
    @classmethod
    def _dns(cls, value: Any) -> Any:
        if value is None:
            return DNS()
        if not isinstance(value, DNS | Mapping):
            raise Invalid(("dns",), DICT)
        return value

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

    def clone(self) -> Result:
        """A deep copy: changing it (its lists, its nested models, DNS's lists) never changes
        ``self``. Equal to ``model_copy(deep=True)``, built from the known shape instead of
        the generic ``copy.deepcopy`` walk (every nested field is an immutable value), which
        cost a daemon ADD ~0.1 ms per copy (bench/README.md)."""
        dns = self.dns
        return self.model_copy(update={
            "interfaces": [i.model_copy() for i in self.interfaces],
            "ips": [ip.model_copy() for ip in self.ips],
            "routes": [r.model_copy() for r in self.routes],
            "dns": dns.model_copy(update={k: list(v) for k in ("nameservers", "search", "options")
                                          if (v := getattr(dns, k)) is not None}),
        })


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
        result = Result(cniVersion=version, interfaces=data.get("interfaces"), ips=data.get("ips"),
                        routes=data.get("routes"), dns=data.get("dns"))
    except Invalid as exc:
        raise ResultParseError(str(exc)) from None
    if fam == versions.FAMILY_040:
        # 0.4.0 interfaces cannot carry the 1.1 fields; drop them as Go's decoder would.
        result.interfaces = [Interface(name=i.name, mac=i.mac, sandbox=i.sandbox) for i in result.interfaces]
    return result


_WIRE_020 = {"address": "ip"}


def _parse_020(data: dict[str, Any], version: str) -> Result:
    """``ip4``/``ip6`` objects, each with its routes; errors are located by their 0.2.0 path."""
    ips: list[IPConfig] = []
    routes: list[Route] = []
    for key in ("ip4", "ip6"):
        entry = data.get(key)
        if entry is None:
            continue
        if not isinstance(entry, dict) or "ip" not in entry:
            raise Invalid((key,), "must be an object with an 'ip' field")
        try:
            ips.append(IPConfig(address=entry["ip"], gateway=entry.get("gateway")))
        except Invalid as exc:
            raise Invalid((key, *(_WIRE_020.get(str(p), p) for p in exc.loc)), exc.reason) from None
        raw_routes = entry.get("routes")
        if raw_routes is None:
            continue
        if not isinstance(raw_routes, list):
            raise Invalid((key, "routes"), LIST)
        for index, route in enumerate(raw_routes):
            if not isinstance(route, Mapping):
                raise Invalid((key, "routes", index), DICT)
            try:
                routes.append(Route.model_validate({k: route[k] for k in ("dst", "gw") if k in route}))
            except Invalid as exc:
                raise exc.under(key, "routes", index) from None
    return Result(cniVersion=version, ips=ips, routes=routes, dns=data.get("dns") or None)


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
    out = result.clone()
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
