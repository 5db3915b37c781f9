"""Multus parity of the primary and ``delegates`` (issue #18, migration items 1 and 5), with
real namespaces and the fake API server.

Multus (pkg/types/conf.go ``LoadNetConf``; pkg/k8sclient ``GetDefaultNetworks``/``getNetDelegate``;
docs/multus.md 1.1 and 1.3): with ``clusterNetwork`` unset every ``delegates`` entry is attached,
``delegates[0]`` as the master (CNI_IFNAME), the others ``net<position>``; with it set,
``delegates`` is ignored. A bare ``clusterNetwork`` name is a NAD in ``multusNamespace`` first,
then a confDir file with that CNI name.
"""

from __future__ import annotations

import base64
import json

import pytest

from metacni_testkit.netns import addresses

PRIMARY = "primary-net"


def _thin_conf(node, **keys):
    """The node's meta config rewritten as a Multus thin config with inline ``delegates``."""
    conf = node.meta_conf()
    conf.pop("clusterNetwork", None)
    primary = json.loads((node.conf_dir / "10-primary.conflist").read_text())
    conf["delegates"] = [primary, node.bridge_conf("side-a", "br-sa", "10.91.1.0/24"),
                         node.bridge_conf("side-b", "br-sb", "10.91.2.0/24")]
    conf.update(keys)
    return conf


def test_every_delegates_entry_is_attached_the_first_as_primary(node):
    conf = _thin_conf(node)
    pod = node.pod()
    result = node.cni("ADD", pod, conf=conf)

    assert node.pod_links(pod) == {"lo", "eth0", "net1", "net2"}
    assert addresses("eth0", netns=pod.netns)[0].startswith("10.88.0.")
    assert addresses("net1", netns=pod.netns)[0].startswith("10.91.1.")
    assert addresses("net2", netns=pod.netns)[0].startswith("10.91.2.")
    eth0 = addresses("eth0", netns=pod.netns)[0]
    assert [ip["address"] for ip in result["ips"]] == [eth0]
    status = node.network_status(pod)
    assert [(s["name"], s["interface"], s.get("default", False)) for s in status] == [
        (PRIMARY, "eth0", True), ("side-a", "net1", False), ("side-b", "net2", False)]

    node.cni("DEL", pod, conf=conf)
    node.assert_clean(pod)


def test_annotation_networks_come_after_all_delegates(node):
    node.add_nad("net-a", "br-a", "10.89.1.0/24")
    conf = _thin_conf(node)
    pod = node.pod(annotations={"k8s.v1.cni.cncf.io/networks": "net-a"})
    node.cni("ADD", pod, conf=conf)
    assert [(s["name"], s["interface"]) for s in node.network_status(pod)] == [
        (PRIMARY, "eth0"), ("side-a", "net1"), ("side-b", "net2"), ("default/net-a", "net3")]
    node.cni("DEL", pod, conf=conf)
    node.assert_clean(pod)


def test_delegates_are_ignored_when_cluster_network_is_set(node):
    conf = _thin_conf(node, clusterNetwork=str(node.conf_dir / "10-primary.conflist"))
    pod = node.pod()
    node.cni("ADD", pod, conf=conf)
    assert node.pod_links(pod) == {"lo", "eth0"}
    node.cni("DEL", pod, conf=conf)
    node.assert_clean(pod)


def _cluster_network_by_name(node):
    """A NAD ``clusternet`` in kube-system and a confDir file with CNI name ``clusternet``:
    the NAD on 10.93.1.0/24, the file on 10.93.2.0/24."""
    node.add_nad("clusternet", "br-cn", "10.93.1.0/24", namespace="kube-system", isDefaultGateway=True)
    (node.conf_dir / "50-clusternet.conf").write_text(json.dumps(
        node.bridge_conf("clusternet", "br-cf", "10.93.2.0/24", gateway=True)))
    conf = node.meta_conf()
    conf["clusterNetwork"] = "clusternet"
    return conf


@pytest.mark.parametrize("nad, subnet, label", [
    (True, "10.93.1.", "kube-system/clusternet"),  # the NAD wins over the file
    (False, "10.93.2.", "clusternet"),             # no NAD: the confDir file with that name
], ids=["nad-before-file", "file-without-nad"])
def test_cluster_network_name_is_a_nad_then_a_file(node, nad: bool, subnet: str, label: str):
    conf = _cluster_network_by_name(node)
    if not nad:
        node.api.delete_nad("kube-system", "clusternet")
    pod = node.pod()
    node.cni("ADD", pod, conf=conf)
    assert addresses("eth0", netns=pod.netns)[0].startswith(subnet)
    assert node.network_status(pod)[0]["name"] == label
    node.cni("DEL", pod, conf=conf)
    node.assert_clean(pod)


def test_ips_and_mac_without_the_capability_travel_in_cni_args(node):
    """Multus sets CNI_ARGS ``IP=``/``MAC=`` for a pod's ips/mac request; a NAD without
    ``capabilities`` (bridge + host-local read them from CNI_ARGS) still gets what was asked."""
    node.add_nad("net-a", "br-a", "10.89.1.0/24")  # no "capabilities"
    selection = [{"name": "net-a", "ips": ["10.89.1.77/24"], "mac": "02:11:22:33:44:56"}]
    pod = node.pod(annotations={"k8s.v1.cni.cncf.io/networks": json.dumps(selection)})
    node.cni("ADD", pod)
    assert addresses("net1", netns=pod.netns) == ["10.89.1.77/24"]
    status = node.network_status(pod)
    assert status[1]["mac"] == "02:11:22:33:44:56" and status[1]["ips"] == ["10.89.1.77"]
    # the primary asked for nothing: its CNI_ARGS carry no IP/MAC (it got a pool address)
    assert addresses("eth0", netns=pod.netns)[0].startswith("10.88.0.")
    node.cni("CHECK", pod)
    node.cni("DEL", pod)
    node.assert_clean(pod)


def test_the_primary_gets_plugins_from_its_sibling_directory(node):
    """CNI 1.1 loading (libcni 1.3; Multus #1419 applies it to clusterNetwork): the primary's
    portmap moved into ``<confDir>/<name>/`` still runs after the bridge, and CHECK/DEL see it."""
    path = node.conf_dir / "10-primary.conflist"
    conflist = json.loads(path.read_text())
    *inline, portmap = conflist["plugins"]
    assert portmap["type"] == "portmap"
    path.write_text(json.dumps({**conflist, "plugins": inline}))
    (node.conf_dir / PRIMARY).mkdir()
    (node.conf_dir / PRIMARY / "50-portmap.conf").write_text(json.dumps(portmap))
    pod = node.pod()
    node.cni("ADD", pod, runtime_config={"portMappings": [{"hostPort": 18080, "containerPort": 80,
                                                            "protocol": "tcp"}]})
    cached = [json.loads((node.cni_dir / "results" / f).read_text()) for f in node.result_cache_files()]
    [primary] = [c for c in cached if c.get("ifName") == "eth0"]
    config = json.loads(base64.b64decode(primary["config"]))
    assert [p["type"] for p in config["plugins"]] == ["bridge", "portmap"]
    node.cni("CHECK", pod)
    node.cni("DEL", pod)
    node.assert_clean(pod)
