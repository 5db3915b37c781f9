"""An annotation's portMappings ``hostIP`` must be the node's own address (issue #14 review of
tenant input): a DNAT rule for another pod's (or a Service's) address would take that traffic.
The real in-process meta plugin, the fake API, real namespaces and traffic."""

from __future__ import annotations

import json
import os

import pytest

from metacni.spec.errors import Code
from metacni_testkit.firewall_testbed import ask, start_echo
from metacni_testkit.netns import addresses
from metacni_testkit.nodes import NETWORKS, Pod
from metacni_testkit.nodes import Node as MetaNode


def port_nad(node: MetaNode) -> None:
    node.add_nad("net-p", "br-hip", "10.89.40.0/24",
                 extra_plugins=[{"type": "portmap", "capabilities": {"portMappings": True}}])


def asking(node: MetaNode, name: str, host_ip: str, port: int) -> Pod:
    sel = [{"name": "net-p", "portMappings": [{"hostPort": port, "containerPort": port, "protocol": "tcp",
                                               "hostIP": host_ip}]}]
    return node.pod(name, annotations={NETWORKS: json.dumps(sel)})


def test_a_host_ip_of_another_pod_is_refused_and_its_traffic_stays_its_own(node: MetaNode):
    port = 20000 + os.getpid() % 20000
    victim = node.pod("victim")
    node.cni("ADD", victim)
    victim_ip = addresses("eth0", victim.netns)[0].split("/")[0]
    port_nad(node)
    thief = asking(node, "thief", victim_ip, port)
    err = node.cni_error("ADD", thief)
    assert err.code == Code.INVALID_CONFIG, err
    for word in ("pod default/thief", "default/net-p", "portMappings[0]", f"hostIP {victim_ip!r}",
                 "not an address of this node"):
        assert word in err.details, (word, err.details)
    assert node.pod_links(thief) == {"lo"}
    server = start_echo(victim.netns, port)  # the node still reaches the victim itself
    try:
        assert ask(node.name, "tcp", victim_ip, port).startswith(tuple("0123456789"))
    finally:
        server.stop()
    node.cni("DEL", thief)
    node.cni("DEL", victim)
    node.assert_clean(victim)
    node.assert_clean(thief)


@pytest.mark.parametrize("host_ip", ["0.0.0.0", "10.88.0.1", ""])
def test_the_nodes_own_host_ip_or_none_is_allowed(node: MetaNode, host_ip: str):
    """10.88.0.1: the node's address on the primary's bridge (there once a first pod runs)."""
    first = node.pod("first")
    node.cni("ADD", first)
    port_nad(node)
    pod = asking(node, "ok", host_ip, 18081)
    node.cni("ADD", pod)
    for done in (pod, first):
        node.cni("DEL", done)
    for done in (pod, first):
        node.assert_clean(done)
