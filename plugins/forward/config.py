"""forward's stdin keys as a pydantic model (``cni_config_model``)."""

from __future__ import annotations

from typing import Literal

from metacni.plugin import PluginConfig


class ForwardConfig(PluginConfig):
    """``backend``: which firewall to program; unset or empty picks the node's."""

    backend: Literal["nftables", "iptables", ""] | None = None
