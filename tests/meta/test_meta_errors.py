"""Every ADD error is a CNI error naming pod, network and reason, and leaves nothing behind."""

from __future__ import annotations

import json

import pytest

from metacni.spec.errors import Code
from metacni_testkit.netns import run

NETWORKS = "k8s.v1.cni.cncf.io/networks"


@pytest.mark.parametrize(("annotation", "network", "reason"), [
    ("net-a,missing", "missing", "cannot find a network-attachment-definition"),
    ('[{"name": "net-a"}, {"name": "net-b"', None, "not valid JSON"),
    ("net-a@averyveryverylong", "net-a", "longer than"),
    ('[{"name": "net-a", "interface": "a/b"}]', "net-a", "must not contain '/'"),
    ('[{"name": "net-a", "interface": "a b"}]', "net-a", "must not contain ' '"),
    ("net-a@data0,net-b@data0", "net-b", "duplicate interface name"),
    ("net-a@net2,net-b", "net-b", "'net2' is requested by both"),
    ("net-a/x/y", "net-a/x/y", "more than one '/'"),
    ("Net-A", "Net-A", "DNS-1123"),
    ('[{"name": "net-a", "ips": ["300.1.1.1"]}]', "net-a", "is not an IP address"),
    ('[{"name": "net-a", "default-route": ["10.89.1.1"]}, {"name": "net-b", "default-route": ["10.89.2.1"]}]',
     "net-b", "ECMP"),
])
def test_bad_annotation(node, annotation, network, reason):
    node.two_nads()
    pod = node.pod(annotations={NETWORKS: annotation})
    err = node.cni_error("ADD", pod)
    text = f"{err.msg}: {err.details}"
    assert err.code == Code.INVALID_CONFIG, text
    assert "pod default/web" in text
    assert reason in text
    if network:
        assert network in text
    node.assert_clean(pod)


def test_namespace_isolation(node):
    node.add_nad("net-a", "br-a", "10.89.1.0/24", namespace="other")
    node.add_nad("net-g", "br-g", "10.89.3.0/24", namespace="shared")
    node.write_primary(extra={"namespaceIsolation": True, "globalNamespaces": "shared, default",
                              "apiTimeout": 5, "apiRetries": 0})
    pod = node.pod(namespace="team", annotations={NETWORKS: "shared/net-g,other/net-a"})
    node.api.reset_counts()
    err = node.cni_error("ADD", pod)
    assert "pod team/web" in err.details and "other/net-a" in err.details
    assert err.msg == "namespace isolation violation"
    assert node.api.count("get", "network-attachment-definitions") == 1  # net-g only; net-a never read
    node.assert_clean(pod)

    allowed = node.pod(name="ok", namespace="team", annotations={NETWORKS: "shared/net-g"})
    node.cni("ADD", allowed)
    assert node.pod_links(allowed) == {"lo", "eth0", "net1"}
    node.cni("DEL", allowed)
    node.assert_clean(allowed)


def test_rollback_when_net2_fails(node):
    node.add_nad("net-a", "br-a", "10.89.1.0/24")
    # net-b's bridge + IPAM succeed, then tuning fails on a sysctl that does not exist.
    node.add_nad("net-b", "br-b", "10.89.2.0/24",
                 extra_plugins=[{"type": "tuning", "sysctl": {"net.ipv4.conf.net2.no_such_knob": "1"}}])
    pod = node.pod(annotations={NETWORKS: "net-a,net-b"})
    err = node.cni_error("ADD", pod)
    assert "pod default/web" in err.details and "default/net-b" in err.details and "net2" in err.details
    assert "no_such_knob" in err.details  # the delegate's own reason survives
    node.assert_clean(pod)  # eth0 and net1 gone, every lease released
    # The API was not told about networks the pod does not have.
    stored = node.api.get_pod("default", "web")
    assert "k8s.v1.cni.cncf.io/network-status" not in (stored["metadata"].get("annotations") or {})


def test_rollback_when_status_write_fails(node):
    node.add_nad("net-a", "br-a", "10.89.1.0/24")
    pod = node.pod(annotations={NETWORKS: "net-a"})
    with node.api.fault(500, verb="patch", resource="pods/status"):
        err = node.cni_error("ADD", pod)
    assert err.code == Code.TRY_AGAIN_LATER and "network-status" in err.details
    node.assert_clean(pod)


@pytest.mark.parametrize("fault", [dict(status=503), dict(drop=True)])
def test_api_error_is_never_no_networks(node, fault):
    node.add_nad("net-a", "br-a", "10.89.1.0/24")
    pod = node.pod(annotations={NETWORKS: "net-a"})
    with node.api.fault(verb="get", resource="pods", **fault):
        err = node.cni_error("ADD", pod)
    assert err.code == Code.TRY_AGAIN_LATER and "pod default/web" in err.details
    node.assert_clean(pod)
    with node.api.fault(verb="get", resource="network-attachment-definitions", **fault):
        err = node.cni_error("ADD", pod)
    assert err.code == Code.TRY_AGAIN_LATER and "net-a" in err.details
    node.assert_clean(pod)


def test_pod_missing_from_api_is_retryable(node):
    pod = node.pod(in_api=False)
    err = node.cni_error("ADD", pod)
    assert err.code == Code.TRY_AGAIN_LATER and "pod default/web" in err.details
    node.assert_clean(pod)


def test_foreign_interface_in_pod_is_refused(node):
    node.add_nad("net-a", "br-a", "10.89.1.0/24")
    pod = node.pod(annotations={NETWORKS: "net-a"})
    run("ip", "link", "add", "net1", "type", "veth", "peer", "name", "other1", netns=pod.netns)  # not ours
    err = node.cni_error("ADD", pod)
    assert "net1" in err.details and "already exist" in err.details
    assert node.pod_links(pod) == {"lo", "net1", "other1"} and node.all_leases() == {}


def test_default_network_override_must_be_single(node):
    node.two_nads()
    pod = node.pod(annotations={"v1.multus-cni.io/default-network": "default/net-a,default/net-b"})
    err = node.cni_error("ADD", pod)
    assert "exactly one" in err.details and "pod default/web" in err.details
    node.assert_clean(pod)


def test_default_network_override(node):
    node.add_nad("alt", "br-alt", "10.90.0.0/24", capabilities={})
    pod = node.pod(annotations={"v1.multus-cni.io/default-network": "default/alt"})
    result = node.cni("ADD", pod)
    assert result["ips"][0]["address"].startswith("10.90.0.")
    status = node.network_status(pod)
    assert status == [dict(status[0], name="default/alt", interface="eth0", default=True)]
    node.cni("DEL", pod)
    node.assert_clean(pod)
    assert json.dumps(status)
