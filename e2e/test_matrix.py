"""The Kubernetes networking requirements, checked on a three-node simulated cluster the way an
operator would: real namespaces, real TCP/UDP/ICMP, the receiver reporting the source address
it saw. Runs once per firewall backend."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from itertools import permutations

import pytest

from metacni.sim import Cluster, Pod
from metacni.sim.plan import ECHO_PORT, HOST_PORT, INTERNET_IP, NET1_SUBNET
from metacni.sim.traffic import EchoHub, ask, ping
from metacni_testkit.netns import link_names

from .conftest import addrs, mac

BLUE = "blue"


class Matrix:
    def __init__(self, cluster: Cluster, pods: dict[str, Pod], hub: EchoHub) -> None:
        self.cluster, self.pods, self.hub = cluster, pods, hub


@pytest.fixture(scope="module")
def matrix(cluster: Cluster) -> Iterator[Matrix]:
    pods = cluster.add_pods([
        {"name": "a1", "node": "node-1", "host_port": HOST_PORT, "container_port": ECHO_PORT},
        {"name": "a2", "node": "node-1", "networks": BLUE},
        {"name": "b1", "node": "node-2", "networks": f"default/{BLUE}"},
        {"name": "c1", "node": "node-3"},
    ])
    with EchoHub() as hub:
        for pod in pods:
            hub.listen(pod.path, ECHO_PORT)
        hub.listen(f"/run/netns/{cluster.plan.internet}", ECHO_PORT)
        yield Matrix(cluster, {p.name: p for p in pods}, hub)


def test_every_pod_gets_its_own_address(matrix: Matrix):
    ips = [p.ip for p in matrix.pods.values()]
    assert len(set(ips)) == len(ips)
    for pod in matrix.pods.values():
        assert ipaddress.ip_address(pod.ip) in ipaddress.ip_network(pod.node.pod_cidr)
        assert addrs(pod.netns, "eth0") == [pod.ip]


def test_pod_to_pod_without_nat_same_and_across_nodes(matrix: Matrix):
    failures = []
    for src, dst in permutations(matrix.pods.values(), 2):
        for proto in ("tcp", "udp"):
            seen = ask(src.path, proto, dst.ip, ECHO_PORT)
            if seen != src.ip:
                failures.append(f"{proto} {src.name}({src.node.name}) -> {dst.name}({dst.node.name}): saw {seen}")
        if not ping(src.path, dst.ip):
            failures.append(f"icmp {src.name} -> {dst.name}: no reply")
    assert not failures, "\n".join(failures)


def test_node_to_pod_without_nat(matrix: Matrix):
    for node in matrix.cluster.plan.nodes:
        node_addrs = {node.ip, node.gateway}  # eth0, or cni0 for pods of its own bridge
        for pod in matrix.pods.values():
            seen = ask(f"/run/netns/{node.netns}", "tcp", pod.ip, ECHO_PORT)
            assert seen in node_addrs, f"{node.name} -> {pod.name}: pod saw {seen}"


def test_pod_to_internet_is_snatted_to_its_node(matrix: Matrix):
    for pod in matrix.pods.values():
        for proto in ("tcp", "udp"):
            assert ask(pod.path, proto, INTERNET_IP, ECHO_PORT) == pod.node.ip, (pod.name, proto)
        assert ping(pod.path, INTERNET_IP)


def test_host_port_from_outside_and_from_the_pod_itself(matrix: Matrix):
    a1 = matrix.pods["a1"]
    internet = f"/run/netns/{matrix.cluster.plan.internet}"
    for proto in ("tcp", "udp"):
        # from outside the cluster: DNAT to the pod, the client's address preserved
        assert ask(internet, proto, a1.node.ip, HOST_PORT) == INTERNET_IP, proto
        # hairpin: the pod reaches itself through its node's hostPort
        assert ask(a1.path, proto, a1.node.ip, HOST_PORT) is not None, proto
        # and a pod on another node reaches it too
        assert ask(matrix.pods["c1"].path, proto, a1.node.ip, HOST_PORT) is not None, proto
    # nodes without the pod do not answer on that port
    other = matrix.cluster.plan.node("node-2")
    assert ask(internet, "tcp", other.ip, HOST_PORT, deadline=0.5) is None


def test_multi_interface_pods_and_network_status(matrix: Matrix):
    net1 = ipaddress.ip_network(NET1_SUBNET)
    for pod in matrix.pods.values():
        status = matrix.cluster.network_status(pod)
        annotated = bool(pod.annotations)
        assert link_names(pod.netns) == ({"lo", "eth0", "net1"} if annotated else {"lo", "eth0"}), pod.name
        assert [s["interface"] for s in status] == (["eth0", "net1"] if annotated else ["eth0"]), pod.name
        assert status[0]["name"] == "podnet" and status[0].get("default") is True
        for entry in status:
            # what the annotation says is what the namespace has
            assert entry["mac"] == mac(pod.netns, entry["interface"]), (pod.name, entry)
            assert sorted(entry["ips"]) == sorted(addrs(pod.netns, entry["interface"])), (pod.name, entry)
        if annotated:
            assert status[1]["name"] == f"default/{BLUE}"
            assert ipaddress.ip_address(status[1]["ips"][0]) in net1


def test_second_network_is_shared_across_nodes(matrix: Matrix):
    a2, b1 = matrix.pods["a2"], matrix.pods["b1"]
    a2_net1, b1_net1 = addrs(a2.netns, "net1")[0], addrs(b1.netns, "net1")[0]
    assert a2.node is not b1.node
    assert ask(a2.path, "tcp", b1_net1, ECHO_PORT) == a2_net1
    assert ask(b1.path, "udp", a2_net1, ECHO_PORT) == b1_net1
    assert ping(a2.path, b1_net1)
    # a pod without the annotation is not on that network
    assert ask(matrix.pods["c1"].path, "tcp", b1_net1, ECHO_PORT, deadline=0.5) is None
