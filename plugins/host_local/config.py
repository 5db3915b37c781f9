"""host-local configuration: the ``ipam`` section validated once by its model
(:mod:`.model`), merged with the call's own sources (``runtimeConfig.ipRanges``, requested
IPs from CNI_ARGS, ``args`` and runtimeConfig) in the reference plugin's order."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from metacni.plugin import CNIError, Code, Request, Route, validate_config
from metacni.spec import versions
from metacni.spec.naming import network_name_problem

from .model import HostLocalConfig, HostLocalLocation
from .ranges import IPAddress, RangeError, RangeSet, check_disjoint, parse_range_set


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


def _check_name(network: str) -> None:
    """Refuses network names that are no file name, before the config is even read."""
    problem = network_name_problem(network)
    if problem:
        raise invalid(network, f"name {problem}")


def _check_inside(network: str, data_dir: str) -> None:
    """Refuses a network whose store would not be a directory of the data directory (a name is
    a plain file name, :func:`_check_name`; what remains is a symlink leading out), before any
    path is built."""
    base = Path(data_dir).resolve()
    store = base / network
    if store.is_symlink() and store.resolve().parent != base:
        raise invalid(network, f"name would escape ipam.dataDir {data_dir!r}")


def load_location(request: Request) -> IPAMConfig:
    """Just what DEL, CHECK and GC need (:class:`.model.HostLocalLocation`): the store location."""
    network = request.network_name
    _check_name(network)
    ipam = validate_config(HostLocalLocation, request.config, network, "host-local IPAM config").ipam
    _check_inside(network, ipam.data_dir)
    return IPAMConfig(network=network, data_dir=ipam.data_dir, resolv_conf=ipam.resolv_conf)


def load(request: Request) -> IPAMConfig:
    """Everything ADD needs, validated; errors are code 7 naming the field and network
    (the ipam section's model, :class:`.model.HostLocalConfig`, with the JSON path)."""
    network = request.network_name
    _check_name(network)
    ipam = validate_config(HostLocalConfig, request.config, network, "host-local IPAM config").ipam
    _check_inside(network, ipam.data_dir)
    try:
        runtime = [parse_range_set(item, f"runtimeConfig.ipRanges[{i}]")
                   for i, item in enumerate(request.runtime_config.get("ipRanges") or [])]
        sets = (*runtime, *ipam.range_sets)
        if runtime:
            check_disjoint(sets)
    except RangeError as exc:
        raise invalid(network, str(exc)) from None
    if not sets:
        raise invalid(network, "no IP ranges specified (ipam.ranges, ipam.subnet or runtimeConfig.ipRanges)")
    if not versions.at_least(request.cni_version, "0.3.0"):
        fams = [rs[0].version for rs in sets]
        if len(fams) != len(set(fams)):
            raise invalid(network, f"CNI version {request.cni_version} does not support more than 1 "
                                   "address per family")
    return IPAMConfig(network=network, data_dir=ipam.data_dir, range_sets=sets, routes=tuple(ipam.routes or ()),
                      resolv_conf=ipam.resolv_conf, requested=_requested(request, network))


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
