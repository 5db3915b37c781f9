"""host-local configuration: the ``ipam`` object plus the network name, CNI_ARGS and
runtimeConfig, merged in the reference plugin's order."""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from metacni.plugin import CNIError, Code, Request, Route, validate_config
from metacni.spec import versions
from metacni.spec.check import Invalid
from metacni.spec.naming import network_name_problem

from .ranges import IPAddress, RangeError, RangeSet, check_disjoint, parse_range_set

DEFAULT_DATA_DIR = "/var/lib/cni/networks"


@dataclass(frozen=True)
class IPAMConfig:
    network: str
    data_dir: str
    range_sets: tuple[RangeSet, ...] = ()
    routes: tuple[Route, ...] = ()
    resolv_conf: str | None = None
    requested: tuple[IPAddress, ...] = field(default=())


def invalid(network: str, details: str) -> CNIError:
    return CNIError(Code.INVALID_CONFIG, "invalid host-local IPAM config", f"network {network!r}: {details}")


def _ipam(request: Request) -> Mapping[str, Any]:
    ipam = request.config.get("ipam")
    if not isinstance(ipam, Mapping):
        raise invalid(request.network_name, "ipam: missing or not an object")
    return ipam


def load_location(request: Request) -> IPAMConfig:
    """Just what DEL, CHECK and GC need: the store location. Refuses network names that
    would escape the data directory before any path is built."""
    network = request.network_name
    problem = network_name_problem(network)
    if problem:
        raise invalid(network, f"name {problem}")
    ipam = _ipam(request)
    data_dir = ipam.get("dataDir") or DEFAULT_DATA_DIR
    if not isinstance(data_dir, str):
        raise invalid(network, "ipam.dataDir: not a string")
    base = os.path.realpath(data_dir)
    if os.path.dirname(os.path.realpath(os.path.join(base, network))) != base:
        raise invalid(network, f"name would escape ipam.dataDir {data_dir!r}")
    resolv = ipam.get("resolvConf")
    if resolv is not None and not isinstance(resolv, str):
        raise invalid(network, "ipam.resolvConf: not a string")
    return IPAMConfig(network=network, data_dir=data_dir, resolv_conf=resolv or None)


def load(request: Request) -> IPAMConfig:
    """Everything ADD needs, validated; errors are code 7 naming the field and network
    (the ipam section's model, :class:`.model.HostLocalConfig`, with the JSON path)."""
    from .model import HostLocalConfig

    base = load_location(request)
    validate_config(HostLocalConfig, request.config, base.network, "host-local IPAM config")
    network, ipam = base.network, _ipam(request)
    raw_sets: list[tuple[str, Any]] = []
    rc = request.runtime_config
    for i, item in enumerate(rc.get("ipRanges") or []):
        raw_sets.append((f"runtimeConfig.ipRanges[{i}]", item))
    if ipam.get("subnet"):
        legacy = {k: ipam.get(k) for k in ("subnet", "rangeStart", "rangeEnd", "gateway")}
        raw_sets.append(("ipam", [legacy]))
    ranges = ipam.get("ranges")
    if ranges is not None and not isinstance(ranges, list):
        raise invalid(network, "ipam.ranges: expected a list of range sets")
    for i, item in enumerate(ranges or []):
        raw_sets.append((f"ipam.ranges[{i}]", item))
    if not raw_sets:
        raise invalid(network, "no IP ranges specified (ipam.ranges, ipam.subnet or runtimeConfig.ipRanges)")
    try:
        sets = tuple(parse_range_set(items, where) for where, items in raw_sets)
        check_disjoint(sets)
    except RangeError as exc:
        raise invalid(network, str(exc)) from None

    routes = ipam.get("routes") or []
    if not isinstance(routes, list):
        raise invalid(network, "ipam.routes: expected a list")
    parsed: list[Route] = []
    for index, item in enumerate(routes):
        try:
            parsed.append(Route.model_validate(item))
        except Invalid as exc:
            raise invalid(network, f"{exc.where(f'ipam.routes[{index}]')}: {exc.reason}") from None
    parsed_routes = tuple(parsed)

    requested = _requested(request, network)
    if not versions.at_least(request.cni_version, "0.3.0"):
        fams = [rs[0].version for rs in sets]
        if len(fams) != len(set(fams)):
            raise invalid(network, f"CNI version {request.cni_version} does not support more than 1 "
                                   "address per family")
    return IPAMConfig(network=network, data_dir=base.data_dir, range_sets=sets, routes=parsed_routes,
                      resolv_conf=base.resolv_conf, requested=requested)


def _requested(request: Request, network: str) -> tuple[IPAddress, ...]:
    """Requested addresses from CNI_ARGS ``IP=`` (comma-separated), ``args.cni.ips`` and the
    ``ips`` capability; a prefix length is allowed and ignored; duplicates collapse."""
    sources: list[tuple[str, Any]] = []
    env = request.args.get("IP")
    if env:
        sources += [("CNI_ARGS IP", part) for part in env.split(",") if part.strip()]
    args = request.config.get("args")
    cni_args = args.get("cni") if isinstance(args, Mapping) else None
    if isinstance(cni_args, Mapping):
        sources += [("args.cni.ips", v) for v in cni_args.get("ips") or []]
    sources += [("runtimeConfig.ips", v) for v in request.runtime_config.get("ips") or []]
    out: list[IPAddress] = []
    for where, value in sources:
        if not isinstance(value, str):
            raise invalid(network, f"{where}: {value!r} is not a string")
        try:
            ip = ipaddress.ip_interface(value.strip()).ip
        except ValueError:
            raise invalid(network, f"{where}: invalid IP address {value!r}") from None
        if ip not in out:
            out.append(ip)
    return tuple(out)
