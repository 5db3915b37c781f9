"""The bridge plugin's stdin keys as a pydantic model (``cni_config_model``).

It checks types, ranges and the combinations the reference plugin refuses; :mod:`.config`
then builds the :class:`~.config.BridgeConf` the verbs use from the checked dict.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from metacni.plugin import IPAMSection, PluginConfig
from metacni.spec.naming import ifname_problem

VLAN_MAX = 4094


class BridgeConfig(PluginConfig):
    """Keys of the reference bridge NetConf; ``null`` means "not set" for each of them."""

    bridge: str | None = None
    isGateway: bool | None = None
    isDefaultGateway: bool | None = None
    forceAddress: bool | None = None
    mtu: int | None = Field(None, ge=0, le=65535)
    hairpinMode: bool | None = None
    promiscMode: bool | None = None
    vlan: int | None = Field(None, ge=0, le=VLAN_MAX)
    preserveDefaultVlan: bool | None = None
    enabledad: bool | None = None
    disableContainerInterface: bool | None = None
    portIsolation: bool | None = None
    ipMasq: bool | None = None
    ipMasqBackend: Literal["iptables", "nftables"] | None = None
    macspoofchk: bool | None = None
    ipam: IPAMSection | None = None

    @field_validator("bridge")
    @classmethod
    def _bridge_name(cls, value: str | None) -> str | None:
        problem = ifname_problem(value) if value else None
        if problem:
            raise ValueError(f"{value!r} is not a valid interface name: {problem}")
        return value

    @model_validator(mode="after")
    def _combinations(self) -> BridgeConfig:
        if self.hairpinMode and self.promiscMode:
            raise ValueError("hairpinMode and promiscMode cannot both be true")
        if self.disableContainerInterface and self.ipam is not None and self.ipam.type:
            raise ValueError("disableContainerInterface cannot be used together with ipam")
        return self
