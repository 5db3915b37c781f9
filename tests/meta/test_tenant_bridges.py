"""NAD bridges cannot reach the node's or another tenant's networks (issue #14 follow-up 2,
docs/design/1408-nad-bridges.md): the real in-process meta plugin, the fake API, real links."""

from __future__ import annotations

import os
from typing import Any

import pytest

from metacni.spec.errors import Code
from metacni_testkit.firewall_testbed import ask, start_echo
from metacni_testkit.netns import addresses, link_names, links, run
from metacni_testkit.nodes import NETWORKS, Pod
from metacni_testkit.nodes import Node as MetaNode

API = {"apiTimeout": 5, "apiConnectTimeout": 2, "apiRetries": 0}


def nad(node: MetaNode, namespace: str, name: str, bridge: str, subnet: str, **extra: Any) -> None:
    conf = node.bridge_conf(name, bridge, subnet)
    conf.update(extra)
    node.api.add_nad(namespace, name, conf)  # type: ignore[union-attr]


def alias(node: MetaNode, name: str) -> str:
    return next((ln.get("ifalias", "") for ln in links(node.name) if ln["ifname"] == name), "")


def refused(node: MetaNode, pod: Pod, *words: str) -> None:
    """ADD is code 7 naming ``words``; nothing of this pod is left (other pods may live on)."""
    before = link_names(node.name)
    err = node.cni_error("ADD", pod)
    assert err.code == Code.INVALID_CONFIG, err
    for word in (f"container {pod.container_id}", *words):
        assert word in err.details, (word, err.details)
    assert node.pod_links(pod) == {"lo"}
    assert link_names(node.name) <= before | {"cni0"}  # no veth, no bridge of the NAD's (cni0: the primary's)
    leases = [ip for net, ips in node.all_leases().items() for ip in ips
              if pod.container_id in (node.data_dir / net / ip).read_text()]
    assert leases == []
    assert not [f for f in node.result_cache_files() if pod.container_id in f]
    assert not (node.cni_dir / pod.container_id).exists()


def reaches(pod: Pod, netns: str, address: str) -> bool:
    """A TCP exchange from the pod to an echo server in ``netns`` at ``address`` (retried until
    its deadline: a new bridge port may need a moment to forward)."""
    port = 20000 + os.getpid() % 20000
    server = start_echo(netns, port)
    try:
        return ask(pod.netns, "tcp", address, port).startswith(tuple("0123456789"))
    finally:
        server.stop()


def test_a_nad_may_not_join_the_primary_bridge(node: MetaNode):
    nad(node, "default", "net-x", "cni0", "10.89.7.0/24")
    pod = node.pod(annotations={NETWORKS: "net-x"})
    refused(node, pod, "net-x", "bridge", "'cni0'", "sharedBridges")
    assert not any(a.startswith("10.89.7.") for a in addresses("cni0", node.name))


def test_a_nad_may_not_join_another_namespaces_bridge(node: MetaNode):
    nad(node, "team-a", "net-a", "br-ten", "10.89.8.0/24")
    nad(node, "team-b", "net-b", "br-ten", "10.89.9.0/24")
    first = node.pod("a1", "team-a", annotations={NETWORKS: "net-a"})
    node.cni("ADD", first)
    assert alias(node, "br-ten") == "metacni:ns=team-a"
    intruder = node.pod("b1", "team-b", annotations={NETWORKS: "net-b"})
    refused(node, intruder, "net-b", "'team-b'", "br-ten", "another namespace")
    assert not any(a.startswith("10.89.9.") for a in addresses("br-ten", node.name))
    # the same namespace may: a second pod joins and reaches the first over the bridge
    second = node.pod("a2", "team-a", annotations={NETWORKS: "net-a"})
    node.cni("ADD", second)
    peer = next(a for a in addresses("net1", first.netns) if a.startswith("10.89.8."))
    assert reaches(second, first.netns, peer.split("/")[0])
    for pod in (first, second):
        node.cni("DEL", pod)
    for pod in (first, second, intruder):
        node.assert_clean(pod)


def test_an_untagged_node_bridge_needs_shared_bridges(node: MetaNode):
    run("ip", "link", "add", "br-node", "type", "bridge", netns=node.name)
    run("ip", "link", "add", "br-shared", "type", "bridge", netns=node.name)
    nad(node, "default", "net-n", "br-node", "10.89.10.0/24")
    nad(node, "default", "net-s", "br-shared", "10.89.11.0/24")
    refused(node, node.pod("p1", annotations={NETWORKS: "net-n"}), "br-node", "sharedBridges")
    node.write_primary(extra={**API, "sharedBridges": ["br-shared"]})
    ok = node.pod("p2", annotations={NETWORKS: "net-s"})
    node.cni("ADD", ok)
    assert node.pod_links(ok) == {"lo", "eth0", "net1"} and alias(node, "br-shared") == ""
    assert reaches(ok, node.name, "10.89.11.1")
    node.cni("DEL", ok)
    node.assert_clean(ok)
    refused(node, node.pod("p3", annotations={NETWORKS: "net-n"}), "br-node")


@pytest.mark.parametrize("subnet", ["10.88.0.0/16", "10.88.0.128/25"])
def test_a_nad_gateway_overlapping_a_node_route_is_refused(node: MetaNode, subnet: str):
    """The primary's 10.88.0.0/24 route is on cni0: a NAD gateway there would take its traffic."""
    nad(node, "default", "net-o", "br-ovl", subnet)
    pod = node.pod(annotations={NETWORKS: "net-o"})
    refused(node, pod, "net-o", "isGateway", "overlaps the node's route to 10.88.0.0/24")
    assert "br-ovl" not in link_names(node.name)
    assert node.all_leases().get("net-o", []) == []


def test_a_nad_gateway_outside_its_subnet_on_a_node_route_is_refused(node: MetaNode):
    """ipam's gateway names the address put on the host: 10.88.0.77/24 would route the primary's
    10.88.0.0/24 into the NAD's bridge, whatever the NAD's own subnet."""
    conf = node.bridge_conf("net-g", "br-gw", "10.89.14.0/24")
    conf["ipam"]["ranges"] = [[{"subnet": "10.89.14.0/24", "gateway": "10.88.0.77"}]]
    node.api.add_nad("default", "net-g", conf)  # type: ignore[union-attr]
    pod = node.pod(annotations={NETWORKS: "net-g"})
    refused(node, pod, "net-g", "isGateway", "10.88.0.77")
    assert not any(a.startswith("10.88.0.77") for a in addresses("cni0", node.name))


def test_ip_masq_from_a_nad_is_a_node_setting(node: MetaNode):
    nad(node, "default", "net-m", "br-masq", "10.89.12.0/24", ipMasq=True)
    allowed = node.pod("m1", annotations={NETWORKS: "net-m"})
    node.cni("ADD", allowed)  # allowed by default
    node.cni("DEL", allowed)
    node.assert_clean(allowed)
    node.write_primary(extra={**API, "allowNadIpMasq": False})
    pod = node.pod("m2", annotations={NETWORKS: "net-m"})
    err = node.cni_error("ADD", pod)
    assert err.code == Code.INVALID_CONFIG and "ipMasq" in err.details and "allowNadIpMasq" in err.details
    assert "default/net-m" in err.details
    node.assert_clean(pod)


def test_the_tenant_mark_cannot_be_forged(node: MetaNode):
    """A NAD carrying its own metacniTenant (claiming a shared bridge) has it replaced."""
    nad(node, "default", "net-f", "cni0", "10.89.13.0/24",
        metacniTenant={"namespace": "kube-system", "sharedBridges": ["cni0"]})
    refused(node, node.pod(annotations={NETWORKS: "net-f"}), "cni0", "namespace 'default'")


def test_the_mark_names_the_same_key_on_both_sides():
    from metacni.meta.trust import TENANT_KEY
    from plugins.bridge.tenant import TENANT_KEY as BRIDGE_KEY

    assert TENANT_KEY == BRIDGE_KEY
