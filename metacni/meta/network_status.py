"""The ``k8s.v1.cni.cncf.io/network-status`` annotation, built from the delegates' results.

Shape as the NAD client writes it: name, interface, ips (no prefix), mac, mtu, default, dns,
gateway, device-info. One entry per sandboxed interface; a result with none still gets a
minimal entry (the spec asks for one; Multus writes nothing).
"""

from __future__ import annotations

import ipaddress
import os
from logging import getLogger
from pathlib import Path, PurePath
from typing import TYPE_CHECKING

from metacni.spec import safejson
from metacni.spec.results import Result, convert

from .networks import Delegate

if TYPE_CHECKING:
    from typing import Any

log = getLogger(__name__)


def device_info_path(info_dir: str | os.PathLike[str], d: Delegate) -> Path | None:
    """The attachment's NPWG device-info file: the ``CNIDeviceInfoFile`` metacni passed it
    (:mod:`.devices`, only for an attachment given a device), never a file outside ``info_dir``
    (its parent is ``info_dir``, element by element, and its name is not ``..``)."""
    given = d.capability_args.get("CNIDeviceInfoFile") if "deviceID" in d.capability_args else None
    if not isinstance(given, str) or not given:
        return None
    path = Path(given)
    if path.parent == PurePath(info_dir) and path.name not in ("", ".."):
        return path
    return None


def _device_info(info_dir: str | os.PathLike[str], d: Delegate, container_id: str) -> dict[str, Any] | None:
    path = device_info_path(info_dir, d)
    if path is None:
        return None
    try:
        data = safejson.loads(path.read_bytes())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        log.warning("ignoring unreadable device-info file %s: %s", path, exc)
        return None
    return data if isinstance(data, dict) else None


def entries(d: Delegate, result: Result, container_id: str = "",
            info_dir: str | os.PathLike[str] | None = None) -> list[dict[str, Any]]:
    """The network-status entries of one attachment; ``info_dir`` (deviceInfoDir) None: no
    ``device-info``."""
    res = convert(result, "1.1.0")
    if not res.interfaces:  # Multus' CreateNetworkStatuses: no interface, no entry (an auxiliary chain)
        return []
    sandboxed = [i for i, iface in enumerate(res.interfaces) if iface.sandbox]
    dns = res.dns.model_dump(exclude_none=True)
    gateways = [r.gw for r in res.routes if r.gw and ipaddress.ip_network(r.dst, strict=False).prefixlen == 0]
    devinfo = _device_info(info_dir, d, container_id) if info_dir is not None else None

    def entry(ifname: str, ips: list[str], mac: str | None, mtu: int | None, default: bool) -> dict[str, Any]:
        out: dict[str, Any] = {"name": d.label, "interface": ifname, "ips": ips}
        if mac:
            out["mac"] = mac
        if mtu:
            out["mtu"] = mtu
        if default:
            out["default"] = True
        out["dns"] = dns
        if gateways:
            out["gateway"] = gateways
        if devinfo:
            out["device-info"] = devinfo
        return out

    def addr(ip: str) -> str:
        return str(ipaddress.ip_interface(ip).ip)

    if len(sandboxed) <= 1:
        iface = res.interfaces[sandboxed[0]] if sandboxed else None
        return [entry(iface.name if iface else d.ifname, [addr(ip.address) for ip in res.ips],
                      iface.mac if iface else None, iface.mtu if iface else None, d.primary)]
    out = []
    default_index = next((ip.interface for ip in res.ips if ip.gateway and ip.interface in sandboxed),
                         sandboxed[0])
    for pos, index in enumerate(sandboxed):
        iface = res.interfaces[index]
        last = pos == len(sandboxed) - 1
        ips = [addr(ip.address) for ip in res.ips
               if ip.interface == index or (last and ip.interface not in sandboxed)]
        out.append(entry(iface.name, ips, iface.mac, iface.mtu, d.primary and index == default_index))
    return out


def network_status(attached: list[tuple[Delegate, Result]], container_id: str = "",
                   info_dir: str | os.PathLike[str] | None = None) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for d, result in attached:
        out.extend(entries(d, result, container_id, info_dir))
    return out
