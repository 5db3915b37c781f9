"""Traffic probes for the bridge tests; they live in :mod:`metacni.testing.traffic` now
(shared with e2e/ and ``metacni demo``) and are re-exported here for existing imports."""

from metacni.testing.traffic import in_netns, ping, tcp_exchange

__all__ = ["in_netns", "ping", "tcp_exchange"]
