"""The bridge plugin's config keys (the reference NetConf), validated up front.

Every problem is a CNIError naming the key and the network: code 7 for invalid values,
code 2 for valid keys whose feature this build does not implement yet (refused loudly
rather than silently ignored).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from metacni.plugin import DNS, CNIError, Code, Request, validate_config
from metacni.spec.naming import ifname_problem

DEFAULT_BRIDGE = "cni0"
_HEX_DIGITS = frozenset("0123456789abcdefABCDEF")


@dataclass(frozen=True)
class BridgeConf:
    network: str
    bridge: str = DEFAULT_BRIDGE
    is_gateway: bool = False
    is_default_gateway: bool = False
    force_address: bool = False
    mtu: int = 0
    hairpin: bool = False
    promisc: bool = False
    vlan: int = 0
    preserve_default_vlan: bool = False
    enable_dad: bool = False
    disable_container_interface: bool = False
    port_isolation: bool = False
    mac: str | None = None
    dns: DNS | None = None
    has_ipam: bool = False
    ip_masq: bool = False
    ip_masq_backend: str | None = None
    mac_spoof_check: bool = False


def _is_mac(text: str) -> bool:
    """Six colon-separated pairs of hex digits (a pattern compiled per process cost ~0.4 ms)."""
    pairs = text.split(":")
    return len(pairs) == 6 and all(len(pair) == 2 and _HEX_DIGITS.issuperset(pair) for pair in pairs)


def _invalid(network: str, details: str) -> CNIError:
    return CNIError(Code.INVALID_CONFIG, "invalid bridge config", f"network {network!r}: {details}")


def _unsupported(network: str, key: str, value: Any, why: str) -> CNIError:
    return CNIError(Code.UNSUPPORTED_FIELD, "unsupported bridge config field",
                    f"network {network!r}: {key}={value!r} is not supported yet: {why}")


def load(request: Request) -> BridgeConf:
    """The checked config: :class:`.model.BridgeConfig` first (code 7 with the JSON path),
    then the values the verbs use and the features this build refuses (code 2)."""
    from .model import BridgeConfig

    cfg = request.config
    net = request.network_name
    validate_config(BridgeConfig, cfg, net, "bridge config")

    def flag(key: str) -> bool:
        value = cfg.get(key, False)
        if value is None:
            return False
        if not isinstance(value, bool):
            raise _invalid(net, f"{key}: expected true or false, got {value!r}")
        return value

    def integer(key: str, lo: int, hi: int) -> int:
        value = cfg.get(key, 0)
        if value is None:
            return 0
        if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
            raise _invalid(net, f"{key}: expected an integer in [{lo}, {hi}], got {value!r}")
        return value

    bridge = cfg.get("bridge") or DEFAULT_BRIDGE
    if not isinstance(bridge, str) or ifname_problem(bridge):
        raise _invalid(net, f"bridge: {bridge!r} is not a valid interface name")
    is_default_gw = flag("isDefaultGateway")
    conf = BridgeConf(
        network=net,
        bridge=bridge,
        is_gateway=flag("isGateway") or is_default_gw,
        is_default_gateway=is_default_gw,
        force_address=flag("forceAddress"),
        mtu=integer("mtu", 0, 65535),
        hairpin=flag("hairpinMode"),
        promisc=flag("promiscMode"),
        vlan=integer("vlan", 0, 4094),
        preserve_default_vlan=flag("preserveDefaultVlan"),
        enable_dad=flag("enabledad"),
        disable_container_interface=flag("disableContainerInterface"),
        port_isolation=flag("portIsolation"),
        mac=_mac(request),
        dns=_dns(cfg.get("dns"), net),
        has_ipam=_has_ipam(cfg.get("ipam")),
        ip_masq=flag("ipMasq"),
        ip_masq_backend=_masq_backend(cfg.get("ipMasqBackend"), net),
        mac_spoof_check=flag("macspoofchk"),
    )
    if conf.hairpin and conf.promisc:
        raise _invalid(net, "hairpinMode and promiscMode cannot both be true")
    if conf.disable_container_interface and conf.has_ipam:
        raise _invalid(net, "disableContainerInterface cannot be used together with ipam")
    if cfg.get("vlanTrunk"):
        raise _unsupported(net, "vlanTrunk", cfg["vlanTrunk"], "trunk ports are not implemented")
    if conf.vlan and conf.is_gateway:
        raise _unsupported(net, "vlan", conf.vlan, "the VLAN gateway interface (isGateway with vlan) is "
                           "not implemented")
    return conf


def _masq_backend(value: Any, net: str) -> str | None:
    if value is None or value in ("iptables", "nftables"):
        return value
    raise _invalid(net, f'ipMasqBackend must be "iptables" or "nftables", not {value!r}')


def _has_ipam(ipam: Any) -> bool:
    return isinstance(ipam, Mapping) and bool(ipam.get("type"))


def _dns(value: Any, net: str) -> DNS | None:
    if not value:
        return None
    if not isinstance(value, Mapping):
        raise _invalid(net, "dns: expected an object")
    try:
        dns = DNS.model_validate(dict(value))
    except ValueError as exc:
        raise _invalid(net, f"dns: {exc}") from None
    return None if dns.is_empty() else dns


def _mac(request: Request) -> str | None:
    """The container MAC: CNI_ARGS MAC < args.cni.mac < runtimeConfig.mac (later wins)."""
    net = request.network_name
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
    if not isinstance(mac, str) or not _is_mac(mac):
        raise _invalid(net, f"{where}: invalid MAC address {mac!r}")
    if int(mac[:2], 16) & 1:
        raise _invalid(net, f"{where}: {mac} is a multicast MAC address")
    return mac.lower()
