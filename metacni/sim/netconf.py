"""The networks of the simulated cluster: each node's primary conflist and the shared NAD."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .plan import BRIDGE, CLUSTER_CIDR, NET1_SUBNET, PRIMARY_NAME, SECOND_NAD, NodePlan


def primary_conflist(node: NodePlan, ipam_dir: Path, backend: str) -> dict[str, Any]:
    """bridge + host-local on the node's pod CIDR, hostPorts, SNAT to anything outside the
    cluster CIDR, and forward accepts: the default configuration of ``metacni demo``."""
    return {
        "cniVersion": "1.0.0",
        "name": PRIMARY_NAME,
        "plugins": [
            {"type": "bridge", "bridge": BRIDGE, "isGateway": True, "isDefaultGateway": True, "hairpinMode": True,
             "ipam": {"type": "host-local", "dataDir": str(ipam_dir),
                      "ranges": [[{"subnet": node.pod_cidr, "gateway": node.gateway}]]}},
            {"type": "portmap", "capabilities": {"portMappings": True}, "backend": backend},
            {"type": "masq", "nonMasqueradeCIDRs": [CLUSTER_CIDR], "backend": backend},
            {"type": "forward", "backend": backend},
        ],
    }


def second_network(ipam_dir: Path) -> dict[str, Any]:
    """net1: macvlan on every node's eth1 (one L2 across nodes), run by the reference binary.

    Its host-local lease store is one directory shared by all nodes -- they share a filesystem
    here -- which stands in for a cluster-wide IPAM such as whereabouts."""
    return {"cniVersion": "1.0.0", "name": SECOND_NAD, "type": "macvlan", "master": "eth1", "mode": "bridge",
            "ipam": {"type": "host-local", "dataDir": str(ipam_dir), "ranges": [[{"subnet": NET1_SUBNET}]]}}
