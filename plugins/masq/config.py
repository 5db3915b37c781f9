"""masq's stdin keys as a pydantic model (``cni_config_model``)."""

from __future__ import annotations

import ipaddress
from typing import Literal

from pydantic import field_validator

from metacni.plugin import PluginConfig


class MasqConfig(PluginConfig):
    """``backend`` as forward's; ``nonMasqueradeCIDRs``: destinations left un-NATed."""

    backend: Literal["nftables", "iptables", ""] | None = None
    nonMasqueradeCIDRs: list[str] | None = None

    @field_validator("nonMasqueradeCIDRs")
    @classmethod
    def _cidrs(cls, value: list[str] | None) -> list[str] | None:
        for item in value or []:
            ipaddress.ip_network(item, strict=False)
        return value
