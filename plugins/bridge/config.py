"""The bridge plugin's checked config as the verbs use it.

:func:`load` validates the stdin object once, with :class:`.model.BridgeConfig` (CNI error 7
naming the JSON path and the network; 2 for a valid key whose feature is not implemented),
and adds what comes from the call rather than the config (the network name, the MAC the
runtime asks for).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from metacni.plugin import DNS, CNIError, Code, Request, validate_config

from .model import BridgeConfig, mac_adapter


@dataclass(frozen=True)
class BridgeConf:
    """:class:`.model.BridgeConfig`'s values, plus ``network`` and the requested ``mac``."""

    network: str
    bridge: str
    is_gateway: bool
    is_default_gateway: bool
    force_address: bool
    mtu: int
    hairpin: bool
    promisc: bool
    vlan: int
    preserve_default_vlan: bool
    enable_dad: bool
    disable_container_interface: bool
    port_isolation: bool
    mac: str | None
    dns: DNS | None
    has_ipam: bool
    ip_masq: bool
    ip_masq_backend: str | None
    mac_spoof_check: bool


def load(request: Request) -> BridgeConf:
    """The validated config (see the module docstring); no key is read twice."""
    net = request.network_name
    keys = validate_config(BridgeConfig, request.config, net, "bridge config")
    return BridgeConf(
        network=net,
        bridge=keys.bridge,
        is_gateway=keys.gateway,
        is_default_gateway=keys.is_default_gateway,
        force_address=keys.force_address,
        mtu=keys.mtu,
        hairpin=keys.hairpin,
        promisc=keys.promisc,
        vlan=keys.vlan,
        preserve_default_vlan=keys.preserve_default_vlan,
        enable_dad=keys.enable_dad,
        disable_container_interface=keys.disable_container_interface,
        port_isolation=keys.port_isolation,
        mac=_mac(request),
        dns=keys.dns,
        has_ipam=keys.has_ipam,
        ip_masq=keys.ip_masq,
        ip_masq_backend=keys.ip_masq_backend,
        mac_spoof_check=keys.mac_spoof_check,
    )


def _mac(request: Request) -> str | None:
    """The container MAC: CNI_ARGS MAC < args.cni.mac < runtimeConfig.mac (later wins; only
    the winner is checked, as the reference plugin does), as a :data:`.model.MacAddress`."""
    candidates: list[tuple[str, Any]] = []
    if request.args.get("MAC"):
        candidates.append(("CNI_ARGS MAC", request.args["MAC"]))
    args = request.config.get("args")
    cni = args.get("cni") if isinstance(args, Mapping) else None
    if isinstance(cni, Mapping) and cni.get("mac"):
        candidates.append(("args.cni.mac", cni["mac"]))
    rc_mac = request.runtime_config.get("mac")
    if rc_mac:
        candidates.append(("runtimeConfig.mac", rc_mac))
    if not candidates:
        return None
    where, mac = candidates[-1]
    try:
        return mac_adapter().validate_python(mac, strict=True)
    except ValidationError as exc:
        reason = str(exc.errors()[0]["msg"]).removeprefix("Value error, ")
        raise CNIError(Code.INVALID_CONFIG, "invalid bridge config",
                       f"network {request.network_name!r}: {where}: {reason}") from None
