"""The bridge plugin's checked config as the verbs use it.

:func:`load` validates the stdin object once, with :class:`.model.BridgeConfig` (CNI error 7
naming the JSON path and the network; 2 for a valid key whose feature is not implemented),
and adds what comes from the call rather than the config (the network name, the MAC the
runtime asks for).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from pydantic import ValidationError

from metacni.plugin import DNS, CNIError, Code, Request, validate_config

from .model import BridgeConfig, mac_adapter


@dataclass(frozen=True)
class BridgeConf:
    """:class:`.model.BridgeConfig`'s values (``is_gateway`` is its :attr:`~.model.BridgeConfig.gateway`,
    ``has_ipam`` its property), plus ``network`` and the requested ``mac``."""

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


#: the fields of :class:`BridgeConf` that are :class:`.model.BridgeConfig`'s, copied as they are
_KEYS = tuple(f.name for f in fields(BridgeConf) if f.name in BridgeConfig.model_fields and f.name != "is_gateway")


def load(request: Request) -> BridgeConf:
    """The validated config (see the module docstring); no key is read twice."""
    net = request.network_name
    keys = validate_config(BridgeConfig, request.config, net, "bridge config")
    return BridgeConf(network=net, mac=_mac(request), is_gateway=keys.gateway, has_ipam=keys.has_ipam,
                      **{name: getattr(keys, name) for name in _KEYS})


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
