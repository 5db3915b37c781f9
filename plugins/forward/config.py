"""forward's stdin keys as a pydantic model (``cni_config_model``)."""

from __future__ import annotations

from metacni.plugin import FirewallConfig


class ForwardConfig(FirewallConfig):
    """Only ``backend`` (:class:`~metacni.plugin.FirewallConfig`)."""
