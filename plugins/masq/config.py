"""masq's stdin keys as a pydantic model (``cni_config_model``): the one place they are checked."""

from __future__ import annotations

import ipaddress
from typing import Annotated, Any

from pydantic import BeforeValidator, Field

from metacni.firewall.plan import IPNetwork
from metacni.plugin import FirewallConfig
from metacni.spec.check import STR


def _cidr(value: Any) -> Any:
    if not isinstance(value, str):
        raise ValueError(STR)
    try:
        return ipaddress.ip_network(value, strict=False)
    except ValueError:
        raise ValueError(f"{value!r} is not a CIDR") from None


class MasqConfig(FirewallConfig):
    """``backend`` as forward's; ``nonMasqueradeCIDRs``: destinations left un-NATed (host
    bits allowed, as in ``10.96.0.1/12``)."""

    non_masquerade_cidrs: list[Annotated[IPNetwork, BeforeValidator(_cidr)]] = Field(
        default_factory=list, alias="nonMasqueradeCIDRs")
