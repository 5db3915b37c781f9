"""Names and addresses of one simulated cluster.

Addresses are private to the run's namespaces, so concurrent runs may reuse the same plan;
only namespace names (global on the host) carry the run tag.
"""

from __future__ import annotations

import ipaddress
import uuid
from dataclasses import dataclass, field
from pathlib import Path

UNDERLAY_NET = ipaddress.ip_network("192.168.77.0/24")
UNDERLAY_GW = "192.168.77.1"  # the underlay router; the fake API server listens here too
INTERNET_LINK = ipaddress.ip_network("203.0.113.0/24")
INTERNET_ROUTER = "203.0.113.1"  # underlay side of the link to the "internet"
INTERNET_IP = "203.0.113.10"
CLUSTER_CIDR = "10.244.0.0/16"
NET1_SUBNET = "10.250.0.0/24"
API_PORT = 6443
PRIMARY_NAME = "podnet"
SECOND_NAD = "blue"  # the NAD pods name in their annotation; attached as net1
BRIDGE = "cni0"
ECHO_PORT = 8080  # every pod's echo service
HOST_PORT = 30080  # hostPort published by pods that ask for one


def new_tag(prefix: str) -> str:
    """A run tag: short enough that ``<tag>-<suffix>`` stays readable."""
    return f"{prefix}{uuid.uuid4().hex[:6]}"


@dataclass
class NodePlan:
    index: int  # 1-based
    tag: str

    @property
    def name(self) -> str:
        return f"node-{self.index}"

    @property
    def netns(self) -> str:
        return f"{self.tag}-{self.name}"

    @property
    def ip(self) -> str:
        return str(UNDERLAY_NET[10 + self.index])

    @property
    def pod_cidr(self) -> str:
        return f"10.244.{self.index}.0/24"

    @property
    def gateway(self) -> str:
        return f"10.244.{self.index}.1"


@dataclass
class ClusterPlan:
    tag: str
    run_dir: Path
    state_dir: Path
    nodes: list[NodePlan] = field(default_factory=list)
    backend: str = "nftables"

    @classmethod
    def make(cls, *, prefix: str, state_dir: str | Path, nodes: int = 3, backend: str = "nftables",
             tag: str | None = None) -> ClusterPlan:
        tag = tag or new_tag(prefix)
        state = Path(state_dir)
        plan = cls(tag=tag, run_dir=state / tag, state_dir=state, backend=backend)
        plan.nodes = [NodePlan(i, tag) for i in range(1, nodes + 1)]
        return plan

    @property
    def underlay(self) -> str:
        return f"{self.tag}-underlay"

    @property
    def internet(self) -> str:
        return f"{self.tag}-internet"

    @property
    def state_file(self) -> Path:
        return self.state_dir / f"{self.tag}.json"

    def pod_netns(self, pod_name: str) -> str:
        return f"{self.tag}-pod-{pod_name}"

    def node(self, name: str) -> NodePlan:
        for n in self.nodes:
            if n.name == name:
                return n
        raise KeyError(name)
