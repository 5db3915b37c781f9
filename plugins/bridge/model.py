"""The bridge plugin's stdin keys as a pydantic model (``cni_config_model``): the one place
they are checked.

Types, ranges, defaults (``null`` reads as the default, see
:class:`~metacni.spec.models.ReferenceConfig`), the combinations the reference plugin refuses
(code 7) and the valid keys this build does not implement (code 2, ``unsupported``).
:func:`.config.load` builds the verbs' :class:`~.config.BridgeConf` from the validated instance.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field, TypeAdapter, field_validator, model_validator

from metacni.plugin import DNS, IPAMSection, ReferenceConfig, unsupported
from metacni.spec.check import DICT, Invalid
from metacni.spec.naming import ifname_problem

VLAN_MAX = 4094
DEFAULT_BRIDGE = "cni0"
_HEX_DIGITS = frozenset("0123456789abcdefABCDEF")


def _mac(text: str) -> str:
    """Six colon-separated pairs of hex digits, not a multicast address; lower-cased."""
    pairs = text.split(":")
    if not (len(pairs) == 6 and all(len(pair) == 2 and _HEX_DIGITS.issuperset(pair) for pair in pairs)):
        raise ValueError(f"invalid MAC address {text!r}")
    if int(pairs[0], 16) & 1:
        raise ValueError(f"{text} is a multicast MAC address")
    return text.lower()


#: a unicast MAC address as ``aa:bb:cc:dd:ee:ff`` (any case in, lower case out)
MacAddress = Annotated[str, AfterValidator(_mac)]


@cache
def mac_adapter() -> TypeAdapter[str]:
    """The :data:`MacAddress` check for values that are not config keys (CNI_ARGS, runtimeConfig)."""
    return TypeAdapter(MacAddress)


class BridgeConfig(ReferenceConfig):
    """Keys of the reference bridge NetConf."""

    bridge: str = Field(DEFAULT_BRIDGE, alias="bridge")
    is_gateway: bool = Field(False, alias="isGateway")
    is_default_gateway: bool = Field(False, alias="isDefaultGateway")
    force_address: bool = Field(False, alias="forceAddress")
    mtu: int = Field(0, ge=0, le=65535, alias="mtu")
    hairpin: bool = Field(False, alias="hairpinMode")
    promisc: bool = Field(False, alias="promiscMode")
    vlan: int = Field(0, ge=0, le=VLAN_MAX, alias="vlan")
    preserve_default_vlan: bool = Field(False, alias="preserveDefaultVlan")
    enable_dad: bool = Field(False, alias="enabledad")
    disable_container_interface: bool = Field(False, alias="disableContainerInterface")
    port_isolation: bool = Field(False, alias="portIsolation")
    ip_masq: bool = Field(False, alias="ipMasq")
    ip_masq_backend: Literal["iptables", "nftables"] | None = Field(None, alias="ipMasqBackend")
    mac_spoof_check: bool = Field(False, alias="macspoofchk")
    dns: DNS | None = Field(None, alias="dns")
    ipam: IPAMSection | None = Field(None, alias="ipam")
    vlan_trunk: Any = Field(None, alias="vlanTrunk")

    @field_validator("bridge")
    @classmethod
    def _bridge_name(cls, value: str) -> str:
        problem = ifname_problem(value) if value else None
        if problem:
            raise ValueError(f"{value!r} is not a valid interface name: {problem}")
        return value or DEFAULT_BRIDGE

    @field_validator("dns", mode="before")
    @classmethod
    def _dns(cls, value: Any) -> DNS | None:
        """Empty (``{}``, ``[]``, ``""``) or all-empty DNS means none."""
        if not value:
            return None
        if not isinstance(value, Mapping):
            raise ValueError(DICT)
        try:
            dns = DNS.model_validate(dict(value))
        except Invalid as exc:
            raise ValueError(str(exc).removeprefix("$.")) from None
        return None if dns.is_empty() else dns

    @field_validator("vlan_trunk")
    @classmethod
    def _trunk(cls, value: Any) -> Any:
        if value:
            raise unsupported(repr(value), "trunk ports are not implemented")
        return value

    @property
    def gateway(self) -> bool:
        """The bridge gets the gateway address (``isGateway``, implied by ``isDefaultGateway``)."""
        return self.is_gateway or self.is_default_gateway

    @property
    def has_ipam(self) -> bool:
        return self.ipam is not None and bool(self.ipam.type)

    @model_validator(mode="after")
    def _combinations(self) -> BridgeConfig:
        if self.hairpin and self.promisc:
            raise ValueError("hairpinMode and promiscMode cannot both be true")
        if self.disable_container_interface and self.has_ipam:
            raise ValueError("disableContainerInterface cannot be used together with ipam")
        if self.vlan and self.gateway:
            raise unsupported(f"vlan={self.vlan} with isGateway",
                              "the VLAN gateway interface is not implemented")
        return self
