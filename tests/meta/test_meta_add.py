"""ADD through the meta plugin: primary + NADs in real namespaces, status on the fake API."""

from __future__ import annotations

import json

from metacni_testkit.netns import addresses, run

PRIMARY = "primary-net"


def _default_routes(pod) -> list[dict]:
    out = run("ip", "-j", "route", "show", "default", netns=pod.netns).stdout
    return json.loads(out or "[]")


def test_two_nads_comma_form(node):
    node.two_nads()
    pod = node.pod(annotations={"k8s.v1.cni.cncf.io/networks": "net-a, default/net-b"})
    result = node.cni("ADD", pod)

    assert node.pod_links(pod) == {"lo", "eth0", "net1", "net2"}
    [eth0] = addresses("eth0", netns=pod.netns)
    [net1] = addresses("net1", netns=pod.netns)
    [net2] = addresses("net2", netns=pod.netns)
    assert eth0.startswith("10.88.0.") and eth0.endswith("/24")
    assert net1.startswith("10.89.1.") and net2.startswith("10.89.2.")
    # The runtime gets the primary's result, nothing of the secondaries.
    assert [ip["address"] for ip in result["ips"]] == [eth0]
    assert {i["name"] for i in result["interfaces"]} >= {"eth0", "cni0"}

    status = node.network_status(pod)
    assert [(s["name"], s["interface"]) for s in status] == [
        (PRIMARY, "eth0"), ("default/net-a", "net1"), ("default/net-b", "net2")]
    assert [s["ips"] for s in status] == [[eth0.split("/")[0]], [net1.split("/")[0]], [net2.split("/")[0]]]
    assert [s.get("default", False) for s in status] == [True, False, False]
    assert all(len(s["mac"]) == 17 and "dns" in s for s in status)
    # The primary's default route stays where the primary put it.
    assert [(r["gateway"], r["dev"]) for r in _default_routes(pod)] == [("10.88.0.1", "eth0")]
    assert node.leases(PRIMARY) and node.leases("net-a") and node.leases("net-b")

    node.cni("CHECK", pod)
    node.cni("DEL", pod)
    node.assert_clean(pod)


def test_default_route_moves_to_net2_json_form(node):
    node.two_nads()
    selection = [{"name": "net-a"},
                 {"name": "net-b", "namespace": "default", "default-route": ["10.89.2.1"]}]
    pod = node.pod(annotations={"k8s.v1.cni.cncf.io/networks": json.dumps(selection)})
    result = node.cni("ADD", pod)

    routes = _default_routes(pod)
    assert [(r["gateway"], r["dev"]) for r in routes] == [("10.89.2.1", "net2")]
    # The primary's result no longer claims a default route, nor does its cached copy (CHECK passes).
    assert not [r for r in result.get("routes", []) if r["dst"] == "0.0.0.0/0"]
    status = node.network_status(pod)
    assert status[2]["gateway"] == ["10.89.2.1"] and "gateway" not in status[0]
    assert status[0]["default"] is True
    node.cni("CHECK", pod)
    node.cni("DEL", pod)
    node.assert_clean(pod)


def test_custom_interface_names_and_namespaces(node):
    node.add_nad("net-a", "br-a", "10.89.1.0/24", namespace="other")
    node.add_nad("net-b", "br-b", "10.89.2.0/24")
    pod = node.pod(namespace="default",
                   annotations={"k8s.v1.cni.cncf.io/networks": "other/net-a@data0,net-b@net1"})
    node.cni("ADD", pod)
    # net-b asked for net1 explicitly; net-a is named data0; no implicit names collide.
    assert node.pod_links(pod) == {"lo", "eth0", "data0", "net1"}
    status = node.network_status(pod)
    assert [(s["name"], s["interface"]) for s in status] == [
        (PRIMARY, "eth0"), ("other/net-a", "data0"), ("default/net-b", "net1")]
    node.cni("DEL", pod)
    node.assert_clean(pod)


def test_json_form_runtime_args_reach_only_declaring_plugins(node):
    """ips/mac from the annotation become runtimeConfig of the plugins whose config enables them."""
    node.add_nad("net-a", "br-a", "10.89.1.0/24", capabilities={"ips": True, "mac": True})
    selection = [{"name": "net-a", "interface": "fixed0", "ips": ["10.89.1.77/24"],
                  "mac": "02:11:22:33:44:55"}]
    pod = node.pod(annotations={"k8s.v1.cni.cncf.io/networks": json.dumps(selection)})
    node.cni("ADD", pod)
    assert addresses("fixed0", netns=pod.netns) == ["10.89.1.77/24"]
    status = node.network_status(pod)
    assert status[1]["mac"] == "02:11:22:33:44:55" and status[1]["ips"] == ["10.89.1.77"]
    node.cni("DEL", pod)
    node.assert_clean(pod)


def test_requested_capability_the_network_lacks_is_an_error(node):
    node.add_nad("net-a", "br-a", "10.89.1.0/24")  # no "capabilities": ips cannot be honoured
    selection = [{"name": "net-a", "ips": ["10.89.1.77/24"]}]
    pod = node.pod(annotations={"k8s.v1.cni.cncf.io/networks": json.dumps(selection)})
    err = node.cni_error("ADD", pod)
    assert "default/web" in err.details and "default/net-a" in err.details and "ips" in err.details
    node.assert_clean(pod)


def test_pod_annotations_from_runtime_config_make_no_pod_read(node):
    node.two_nads()
    pod = node.pod(annotations={"k8s.v1.cni.cncf.io/networks": "net-a"})  # what the API says
    node.api.reset_counts()
    sent = {"k8s.v1.cni.cncf.io/networks": "net-a,net-b"}  # what the runtime says wins
    node.cni("ADD", pod, runtime_config={"io.kubernetes.cri.pod-annotations": sent})
    assert node.api.count(("get",), "pods") == 0  # a daemon's watch may re-list meanwhile: not a per-ADD read
    assert node.pod_links(pod) == {"lo", "eth0", "net1", "net2"}
    assert len(node.network_status(pod)) == 3
    node.cni("DEL", pod)
    assert node.api.count(("get",), "pods") == 0  # a daemon's watch may re-list meanwhile: not a per-ADD read
    node.assert_clean(pod)


def test_runtime_config_case_insensitive_capability_key(node):
    """containerd sends Go field names; the key lookup must not depend on case."""
    node.add_nad("net-a", "br-a", "10.89.1.0/24")
    pod = node.pod()
    node.api.reset_counts()
    node.cni("ADD", pod, runtime_config={"IO.Kubernetes.CRI.Pod-Annotations":
                                         {"k8s.v1.cni.cncf.io/networks": "net-a"}})
    assert node.api.count(("get",), "pods") == 0  # a daemon's watch may re-list meanwhile: not a per-ADD read
    assert node.pod_links(pod) == {"lo", "eth0", "net1"}
    node.cni("DEL", pod)
    node.assert_clean(pod)


def test_default_networks_and_system_namespaces(node):
    node.add_nad("net-a", "br-a", "10.89.1.0/24", namespace="kube-system")
    node.add_nad("net-b", "br-b", "10.89.2.0/24")
    node.write_primary(extra={"defaultNetworks": ["net-a"], "apiTimeout": 5, "apiRetries": 0})
    pod = node.pod(annotations={"k8s.v1.cni.cncf.io/networks": "net-b"})
    node.cni("ADD", pod)
    # defaultNetworks come first and take net1; the annotation's network is net2.
    assert [(s["name"], s["interface"]) for s in node.network_status(pod)] == [
        (PRIMARY, "eth0"), ("kube-system/net-a", "net1"), ("default/net-b", "net2")]
    node.cni("DEL", pod)
    node.assert_clean(pod)

    system = node.pod(name="dns", namespace="kube-system")
    node.cni("ADD", system)
    assert node.pod_links(system) == {"lo", "eth0"}
    node.cni("DEL", system)
    node.assert_clean(system)


def test_retried_add_of_our_own_making_succeeds(node):
    node.add_nad("net-a", "br-a", "10.89.1.0/24")
    pod = node.pod(annotations={"k8s.v1.cni.cncf.io/networks": "net-a"})
    node.cni("ADD", pod)
    node.cni("ADD", pod)  # e.g. the runtime timed out and retried
    assert node.pod_links(pod) == {"lo", "eth0", "net1"}
    assert len(node.leases(PRIMARY)) == 1 and len(node.leases("net-a")) == 1
    node.cni("DEL", pod)
    node.assert_clean(pod)


def test_empty_spec_config_uses_conf_dir_file(node):
    (node.conf_dir / "50-net-c.conf").write_text(json.dumps(
        node.bridge_conf("net-c", "br-c", "10.89.3.0/24")))
    node.api.add_nad("default", "net-c", "")
    pod = node.pod(annotations={"k8s.v1.cni.cncf.io/networks": "net-c"})
    node.cni("ADD", pod)
    assert addresses("net1", netns=pod.netns)[0].startswith("10.89.3.")
    node.cni("DEL", pod)
    node.assert_clean(pod)
