"""A NAD's network may not take the CNI name of the node's networks (issue #14 review of tenant
input): host-local keeps leases per network name, so a NAD named like the primary (flannel's
``cbr0``, here ``primary-net``) would allocate from the primary's pool and could exhaust it."""

from __future__ import annotations

import pytest

from metacni.meta.annotations import DEFAULT_NETWORK, SKIP_DEFAULT_NETWORKS
from metacni.spec.errors import Code
from metacni_testkit.nodes import NETWORKS, PRIMARY, PRIMARY_SUBNET
from metacni_testkit.nodes import Node as MetaNode


def test_a_nad_named_like_the_primary_is_refused_before_it_takes_a_lease(node: MetaNode):
    first = node.pod("first")
    node.cni("ADD", first)
    leases = node.leases(PRIMARY)
    assert len(leases) == 1
    conf = node.bridge_conf(PRIMARY, "br-squat", f"{PRIMARY_SUBNET}.0/24")
    conf["isGateway"] = False
    node.api.add_nad("default", "squat", conf)  # type: ignore[union-attr]
    pod = node.pod("squatter", annotations={NETWORKS: "squat, squat, squat"})
    err = node.cni_error("ADD", pod)
    assert err.code == Code.INVALID_CONFIG, err
    for word in ("pod default/squatter", "default/squat", repr(PRIMARY), "rename"):
        assert word in err.details, (word, err.details)
    assert node.leases(PRIMARY) == leases  # no address of the primary's pool taken
    assert node.pod_links(pod) == {"lo"}
    # renamed, the same NAD works (its own pool)
    conf["name"] = "squat"
    conf["ipam"]["ranges"] = [[{"subnet": "10.89.42.0/24"}]]
    node.api.update_nad("default", "squat", conf)  # type: ignore[union-attr]
    node.cni("ADD", pod)
    assert len(node.leases(PRIMARY)) == 2 and len(node.leases("squat")) == 3  # its eth0: one
    for done in (pod, first):
        node.cni("DEL", done)
    for done in (pod, first):
        node.assert_clean(done)


@pytest.mark.parametrize("how", ["default-network", "override-and-networks", "skip-default-networks"])
def test_node_network_names_are_protected_whatever_the_pod_says_about_its_defaults(node: MetaNode, how: str):
    """Security review 2026-12-03: only the names of the pod's own node networks were protected.
    A pod replacing its default network (``v1.multus-cni.io/default-network``) or skipping the
    node's defaultNetworks left those names free for its NADs, and their host-local leases went
    into the node network's pool. Here the node has a defaultNetwork ``dn-net`` (an operator's
    NAD in kube-system) besides the primary."""
    assert node.api is not None
    node.api.add_nad("kube-system", "dn", node.bridge_conf("dn-net", "br-dn", "10.89.44.0/24"))
    node.write_primary(extra={"apiTimeout": 5, "apiConnectTimeout": 2, "apiRetries": 0,
                              "defaultNetworks": ["dn"]})
    first = node.pod("first")
    node.cni("ADD", first)
    before = {name: node.leases(name) for name in (PRIMARY, "dn-net", "alt")}
    assert len(before[PRIMARY]) == 1 and len(before["dn-net"]) == 1
    taken = PRIMARY if how != "skip-default-networks" else "dn-net"
    subnet = f"{PRIMARY_SUBNET}.0/24" if taken == PRIMARY else "10.89.44.0/24"
    squat = node.bridge_conf(taken, "br-squat", subnet)
    squat["isGateway"] = False
    node.api.add_nad("default", "squat", squat)
    node.api.add_nad("default", "alt", node.bridge_conf("alt", "br-alt", "10.89.43.0/24"))
    annotations = {
        "default-network": {DEFAULT_NETWORK: "default/squat"},
        "override-and-networks": {DEFAULT_NETWORK: "default/alt", NETWORKS: "squat"},
        "skip-default-networks": {SKIP_DEFAULT_NETWORKS: "true", NETWORKS: "squat"},
    }[how]
    pod = node.pod("squatter", annotations=annotations)
    err = node.cni_error("ADD", pod)
    assert err.code == Code.INVALID_CONFIG, err
    for word in ("pod default/squatter", "default/squat", repr(taken), "rename"):
        assert word in err.details, (word, err.details)
    assert {name: node.leases(name) for name in before} == before
    assert node.pod_links(pod) == {"lo"}
    node.cni("DEL", first)
    node.assert_clean(first)
