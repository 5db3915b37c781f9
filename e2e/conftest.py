"""e2e fixtures: a simulated three-node cluster (metacni.sim) per firewall backend."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from metacni.sim import Cluster, ClusterPlan
from metacni_testkit.netns import is_root, run

STATE_DIR = "/run/metacni-sim"
BACKENDS = ["nftables", "iptables"]


def make_cluster(backend: str, nodes: int = 3) -> Cluster:
    return Cluster(ClusterPlan.make(prefix="mcsim", state_dir=STATE_DIR, nodes=nodes, backend=backend))


@pytest.fixture(scope="module", params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="module")
def cluster(backend: str) -> Iterator[Cluster]:
    if not is_root():
        pytest.skip("needs root for network namespaces")
    with make_cluster(backend) as c:
        yield c


def addrs(netns: str, ifname: str) -> list[str]:
    data = json.loads(run("ip", "-j", "addr", "show", "dev", ifname, netns=netns).stdout or "[]")
    return [a["local"] for e in data for a in e.get("addr_info", []) if a.get("family") == "inet"]


def mac(netns: str, ifname: str) -> str:
    [entry] = json.loads(run("ip", "-j", "link", "show", "dev", ifname, netns=netns).stdout)
    return str(entry["address"])
