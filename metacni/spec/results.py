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
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

from . import versions
from .check import DICT, LIST, REQUIRED, Invalid, opt_int, opt_str, opt_str_list, strict_str
from .errors import CNIError, Code

if TYPE_CHECKING:
    from typing import Any, ClassVar, TypeVar

    M = TypeVar("M", bound="_Model")


@functools.lru_cache(maxsize=2048)
def _canonical(text: str, with_prefix: bool) -> str:
    """ipaddress's canonical text; cached, as a daemon sees the same gateways and routes on
    every call (each parse costs ~3-6 us; a result has several). Invalid text raises ValueError."""
    return str(ipaddress.ip_interface(text) if with_prefix else ipaddress.ip_address(text))


def _address(value: Any, key: str, with_prefix: bool, what: str) -> str:
    text = strict_str(value, key)
    try:
        return _canonical(text, with_prefix)
    except ValueError:
        raise Invalid((key,), f"invalid {what} {value!r}") from None


def _cidr(value: Any, key: str) -> str:
    return _address(value, key, True, "CIDR address")


def _ip(value: Any, key: str) -> str | None:
    return None if value is None else _address(value, key, False, "IP address")


def _net(value: Any, key: str) -> str:
    """Route destinations keep host bits as written (Go's IPNet does), but are validated."""
    return _address(value, key, True, "route destination")


def _family(text: str) -> int:
    """IP version of a canonical address or CIDR (IPv6 text always has a colon, IPv4 never)."""
    return 6 if ":" in text else 4


def _models(cls: type[M], value: Iterable[M | Mapping[str, Any]] | None, key: str) -> list[M]:
    """A list field: model instances are kept, JSON objects are read (errors located by index)."""
    if value is None:
        return []
    if not isinstance(value, list | tuple):
        raise Invalid((key,), LIST)
    out: list[M] = []
    for index, item in enumerate(value):
        if isinstance(item, cls):
            out.append(item)
        elif isinstance(item, Mapping):
            try:
                out.append(cls.from_json(item))
            except Invalid as exc:
                raise exc.under(key, index) from None
        else:
            raise Invalid((key, index), DICT)
    return out


def _dump(value: Any, by_alias: bool, exclude_none: bool) -> Any:
    if isinstance(value, _Model):
        return value.model_dump(by_alias=by_alias, exclude_none=exclude_none)
    if isinstance(value, list):
        return [_dump(v, by_alias, exclude_none) for v in value]
    return value


class _Model:
    """Plain slotted classes with the part of pydantic's model API that callers use.

    Constructors check and normalise their arguments (addresses are canonicalised; integers
    are read laxly, strings strictly) and raise :class:`~metacni.spec.check.Invalid`, a
    ``ValueError`` naming the field. Assignment is not checked, as before.
    """

    __slots__ = ()
    FIELDS: ClassVar[tuple[str, ...]] = ()
    ALIASES: ClassVar[dict[str, str]] = {}  # field name -> JSON key, where they differ
    REQUIRED: ClassVar[tuple[str, ...]] = ()

    def __init__(self, **kwargs: Any) -> None:  # every model defines its own
        raise NotImplementedError

    @classmethod
    def from_json(cls: type[M], data: Mapping[str, Any]) -> M:
        """Read a JSON object: keys by their JSON name (or field name), unknown keys ignored."""
        kwargs: dict[str, Any] = {}
        for name in cls.FIELDS:
            alias = cls.ALIASES.get(name, name)
            if alias in data:
                kwargs[name] = data[alias]
            elif name in data:
                kwargs[name] = data[name]
            elif name in cls.REQUIRED:
                raise Invalid((alias,), REQUIRED)
        return cls(**kwargs)

    @classmethod
    def model_validate(cls: type[M], obj: Any) -> M:
        if isinstance(obj, cls):
            return obj
        if not isinstance(obj, Mapping):
            raise Invalid((), DICT)
        return cls.from_json(obj)

    def model_dump(self, *, by_alias: bool = False, exclude_none: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name in self.FIELDS:
            value = getattr(self, name)
            if value is None and exclude_none:
                continue
            out[self.ALIASES.get(name, name) if by_alias else name] = _dump(value, by_alias, exclude_none)
        return out

    def model_copy(self: M, *, update: Mapping[str, Any] | None = None, deep: bool = False) -> M:
        """A copy; ``deep`` copies nested models and lists too. ``update`` is not checked (pydantic's rule)."""
        new = object.__new__(type(self))
        for name in self.FIELDS:
            value = getattr(self, name)
            if deep:
                value = _deep(value)
            object.__setattr__(new, name, value)
        for name, value in (update or {}).items():
            setattr(new, name, value)
        return new

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return all(getattr(self, n) == getattr(other, n) for n in self.FIELDS)

    __hash__ = None  # type: ignore[assignment]  # mutable, like pydantic models

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{n}={getattr(self, n)!r}' for n in self.FIELDS)})"


def _deep(value: Any) -> Any:
    if isinstance(value, _Model):
        return value.model_copy(deep=True)
    if isinstance(value, list):
        return [_deep(v) for v in value]
    return value


class Interface(_Model):
    __slots__ = ("name", "mac", "mtu", "sandbox", "socket_path", "pci_id")
    FIELDS = __slots__
    ALIASES = {"socket_path": "socketPath", "pci_id": "pciID"}
    REQUIRED = ("name",)

    def __init__(self, name: str, mac: str | None = None, mtu: int | None = None, sandbox: str | None = None,
                 socket_path: str | None = None, pci_id: str | None = None, *,
                 socketPath: str | None = None, pciID: str | None = None) -> None:  # JSON names too
        self.name: str = strict_str(name, "name")
        self.mac: str | None = opt_str(mac, "mac")
        self.mtu: int | None = opt_int(mtu, "mtu")
        self.sandbox: str | None = opt_str(sandbox, "sandbox")
        self.socket_path: str | None = opt_str(socketPath if socket_path is None else socket_path, "socketPath")
        self.pci_id: str | None = opt_str(pciID if pci_id is None else pci_id, "pciID")


class IPConfig(_Model):
    __slots__ = ("address", "gateway", "interface")
    FIELDS = __slots__
    REQUIRED = ("address",)

    def __init__(self, address: str, gateway: str | None = None, interface: int | None = None) -> None:
        self.address: str = _cidr(address, "address")
        self.gateway: str | None = _ip(gateway, "gateway")
        self.interface: int | None = opt_int(interface, "interface")

    @property
    def ip_version(self) -> int:
        return _family(self.address)


class Route(_Model):
    __slots__ = ("dst", "gw", "mtu", "advmss", "priority", "table", "scope")
    FIELDS = __slots__
    REQUIRED = ("dst",)

    def __init__(self, dst: str, gw: str | None = None, mtu: int | None = None, advmss: int | None = None,
                 priority: int | None = None, table: int | None = None, scope: int | None = None) -> None:
        self.dst: str = _net(dst, "dst")
        self.gw: str | None = _ip(gw, "gw")
        self.mtu: int | None = opt_int(mtu, "mtu")
        self.advmss: int | None = opt_int(advmss, "advmss")
        self.priority: int | None = opt_int(priority, "priority")
        self.table: int | None = opt_int(table, "table")
        self.scope: int | None = opt_int(scope, "scope")

    @property
    def ip_version(self) -> int:
        return _family(self.dst)


class DNS(_Model):
    __slots__ = ("nameservers", "domain", "search", "options")
    FIELDS = __slots__

    def __init__(self, nameservers: list[str] | None = None, domain: str | None = None,
                 search: list[str] | None = None, options: list[str] | None = None) -> None:
        self.nameservers: list[str] | None = opt_str_list(nameservers, "nameservers")
        self.domain: str | None = opt_str(domain, "domain")
        self.search: list[str] | None = opt_str_list(search, "search")
        self.options: list[str] | None = opt_str_list(options, "options")

    def is_empty(self) -> bool:
        return not (self.nameservers or self.domain or self.search or self.options)


def _dns(value: DNS | Mapping[str, Any] | None) -> DNS:
    if value is None:
        return DNS()
    if isinstance(value, DNS):
        return value
    if not isinstance(value, Mapping):
        raise Invalid(("dns",), DICT)
    try:
        return DNS.from_json(value)
    except Invalid as exc:
        raise exc.under("dns") from None


class Result(_Model):
    """A CNI result in memory. ``cni_version`` says which version's content it holds."""

    __slots__ = ("cni_version", "interfaces", "ips", "routes", "dns")
    FIELDS = __slots__
    ALIASES = {"cni_version": "cniVersion"}

    def __init__(self, cniVersion: str | None = None,  # the JSON name, as callers write it
                 interfaces: Iterable[Interface | Mapping[str, Any]] | None = None,
                 ips: Iterable[IPConfig | Mapping[str, Any]] | None = None,
                 routes: Iterable[Route | Mapping[str, Any]] | None = None,
                 dns: DNS | Mapping[str, Any] | None = None, *, cni_version: str | None = None) -> None:
        version = cni_version if cni_version is not None else cniVersion
        self.cni_version: str = versions.CURRENT if version is None else strict_str(version, "cniVersion")
        self.interfaces: list[Interface] = _models(Interface, interfaces, "interfaces")
        self.ips: list[IPConfig] = _models(IPConfig, ips, "ips")
        self.routes: list[Route] = _models(Route, routes, "routes")
        self.dns: DNS = _dns(dns)

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
                routes.append(Route.from_json({k: route[k] for k in ("dst", "gw") if k in route}))
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
