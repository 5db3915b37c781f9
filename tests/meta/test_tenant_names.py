"""A NAD's network may not take the CNI name of the node's networks (issue #14 review of tenant
input): host-local keeps leases per network name, so a NAD named like the primary (flannel's
``cbr0``, here ``primary-net``) would allocate from the primary's pool and could exhaust it."""

from __future__ import annotations

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
