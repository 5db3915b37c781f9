"""A Kubernetes cluster simulated on one machine, for e2e/ and ``metacni demo``.

Every object lives in network namespaces the run creates (underlay, "internet", nodes, pods);
the host's own namespace is never changed. Each run has a unique tag carried by every
namespace name, process command line and directory, and a state file, so teardown removes
exactly what the run made, even after a crash.
"""

from .cluster import Cluster, Pod
from .plan import ClusterPlan, NodePlan

__all__ = ["Cluster", "ClusterPlan", "NodePlan", "Pod"]
