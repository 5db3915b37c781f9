"""A pod's annotation cannot take another pod's host port (security review, 2026-12-03;
metacni/meta/hostports.py).

The nftables layer keeps one holder per (address, protocol, port) and replaces a holder it finds,
and a mapping for one of the node's addresses is looked up before the any-address ones. So an
annotation ``portMappings`` entry of pod A (namespace team-a, its own NAD) for the port pod B
(team-b) holds took B's traffic: with the same key by replacing B's element, with ``hostIP`` set to
the node's address by being looked up first. Now A's ADD is code 7 before anything is configured,
B's rules are byte for byte what they were, and A gets the port once B has released it.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from metacni.spec.errors import Code
from metacni_testkit.firewall_testbed import ruleset
from metacni_testkit.nodes import NETWORKS, PRIMARY_SUBNET
from metacni_testkit.nodes import Node as MetaNode

PORT = 18080


def _port_nad(node: MetaNode, namespace: str, name: str, bridge: str, subnet: str) -> None:
    node.add_nad(name, bridge, subnet, namespace=namespace,
                 extra_plugins=[{"type": "portmap", "capabilities": {"portMappings": True}}])


def _mapping(host_ip: str = "") -> dict[str, Any]:
    return {"hostPort": PORT, "containerPort": 80, "protocol": "tcp", **({"hostIP": host_ip} if host_ip else {})}


@pytest.mark.parametrize("victim", ["pod-spec", "annotation"])
@pytest.mark.parametrize("attacker_ip", ["any", "node"])
def test_an_annotation_cannot_take_another_pods_host_port(node: MetaNode, victim: str, attacker_ip: str):
    _port_nad(node, "team-b", "net-b", "br-b", "10.89.21.0/24")
    _port_nad(node, "team-a", "net-a", "br-a", "10.89.22.0/24")
    if victim == "pod-spec":  # the kubelet's hostPort, for the primary
        b = node.pod("b", namespace="team-b")
        node.cni("ADD", b, runtime_config={"portMappings": [_mapping()]})
    else:
        b = node.pod("b", namespace="team-b",
                     annotations={NETWORKS: json.dumps([{"name": "net-b", "portMappings": [_mapping()]}])})
        node.cni("ADD", b)
    before = ruleset(node.name)
    host_ip = f"{PRIMARY_SUBNET}.1" if attacker_ip == "node" else ""  # the node's own address (cni0)
    selection = [{"name": "net-a", "portMappings": [_mapping(host_ip)]}]
    a = node.pod("a", namespace="team-a", annotations={NETWORKS: json.dumps(selection)})

    err = node.cni_error("ADD", a)

    assert err.code == Code.INVALID_CONFIG, err
    for word in ("pod team-a/a", "team-a/net-a", f"hostPort {PORT}/tcp", "another pod"):
        assert word in err.details, (word, err.details)
    assert "team-b" not in err.details  # another tenant's pod is not named
    assert ruleset(node.name) == before
    assert node.pod_links(a) == {"lo"}
    node.cni("DEL", a)
    # once B has released it, the port is A's
    node.cni("DEL", b, runtime_config={"portMappings": [_mapping()]} if victim == "pod-spec" else None)
    node.cni("ADD", a)
    assert str(PORT) in ruleset(node.name)  # its map element
    node.cni("DEL", a)
    for pod in (a, b):
        node.assert_clean(pod)


def test_the_same_pod_may_map_its_own_port_again(node: MetaNode):
    """A re-ADD of the same container (the runtime retrying) is not a clash with itself."""
    _port_nad(node, "team-a", "net-a", "br-a", "10.89.22.0/24")
    a = node.pod("a", namespace="team-a",
                 annotations={NETWORKS: json.dumps([{"name": "net-a", "portMappings": [_mapping()]}])})
    node.cni("ADD", a)
    node.cni("ADD", a)
    node.cni("DEL", a)
    node.assert_clean(a)
