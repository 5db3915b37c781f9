"""A Kubernetes cluster simulated on one machine, for e2e/ and ``metacni demo``.

Every object lives in network namespaces the run creates (underlay, "internet", nodes, pods);
the host's own namespace is never changed. Each run has a unique tag carried by every
namespace name, process command line and directory, and a state file, so teardown removes
exactly what the run made, even after a crash.

The fake Kubernetes API server (:mod:`metacni.sim.fakeapi`) and the in-process traffic probes
(:mod:`metacni.sim.traffic`) live here too: the demo needs them, and tests reuse them. Importing
one of those does not import the simulator: ``Cluster`` and friends load on first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .cluster import Cluster, Pod
    from .plan import ClusterPlan, NodePlan

__all__ = ["Cluster", "ClusterPlan", "NodePlan", "Pod"]
_HOMES = {"Cluster": ".cluster", "Pod": ".cluster", "ClusterPlan": ".plan", "NodePlan": ".plan"}


def __getattr__(name: str) -> Any:
    """``from metacni.sim import Cluster`` imports the simulator only then (PEP 562)."""
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(home, __name__), name)
