"""portmap's stdin keys as a pydantic model (``cni_config_model``); the port mappings
themselves come from runtimeConfig and are checked by :mod:`metacni.firewall.portmap`."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from metacni.plugin import PluginConfig


class PortmapConfig(PluginConfig):
    """The reference portmap's keys."""

    backend: Literal["nftables", "iptables", ""] | None = None
    snat: bool | None = None
    masqAll: bool | None = None
    externalSetMarkChain: str | None = None
    markMasqBit: int | None = Field(None, ge=0, le=31)
    conditionsV4: list[str] | None = None
    conditionsV6: list[str] | None = None

    @model_validator(mode="after")
    def _mark(self) -> PortmapConfig:
        if self.externalSetMarkChain and self.markMasqBit is not None:
            raise ValueError("externalSetMarkChain cannot be combined with markMasqBit")
        if self.externalSetMarkChain and self.backend == "nftables":
            raise ValueError('externalSetMarkChain is iptables-only and cannot be used with backend "nftables"')
        return self
