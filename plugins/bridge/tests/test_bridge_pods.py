"""Two pods on one bridge: addresses, traffic, and the result against the reference plugins."""

from __future__ import annotations

import copy
import ipaddress
import json
import re

import pytest

from metacni.engine.invoke import Invoker
from metacni.engine.registry import Registry
from metacni.sim.traffic import ping, tcp_exchange
from metacni_testkit.netns import addresses, link_names, links, run

REFERENCE = Registry(disabled=frozenset({"bridge", "host-local"}))


def test_two_pods_talk_to_gateway_and_each_other(node):
    conf = node.conf()
    pod_a, pod_b = node.pod().path, node.pod().path
    res_a = node.invoke("ADD", conf, pod_a, "pod-a")
    res_b = node.invoke("ADD", conf, pod_b, "pod-b")
    ips_a = [ipaddress.ip_interface(ip.address) for ip in res_a.ips]
    ips_b = [ipaddress.ip_interface(ip.address) for ip in res_b.ips]
    assert {i.version for i in ips_a} == {4, 6}
    assert not set(ips_a) & set(ips_b)

    # What the kernel says, read with an independent tool.
    pod_a_name = pod_a.rsplit("/", 1)[1]
    assert sorted(addresses("eth0", netns=pod_a_name)) == sorted(str(i) for i in ips_a)
    bridge = [ln for ln in links(node.name) if ln["ifname"] == "cni0"]
    assert bridge and "UP" in bridge[0]["flags"]
    ports = [ln for ln in links(node.name) if ln.get("master") == "cni0"]
    assert sorted(p["ifname"] for p in ports) == sorted([res_a.interfaces[1].name, res_b.interfaces[1].name])
    route = run("ip", "-j", "route", "show", "default", netns=pod_a_name).stdout
    assert '"gateway":"10.77.0.1"' in route.replace(" ", "")

    for ip in res_a.ips:
        assert ping(pod_a, ip.gateway), f"pod A cannot reach gateway {ip.gateway}"
    for ip in ips_b:
        assert ping(pod_a, str(ip.ip)), f"pod A cannot reach pod B at {ip.ip}"
    for ip in ips_b:
        assert tcp_exchange(pod_b, str(ip.ip), pod_a) == b"HELLO OVER THE BRIDGE"

    node.invoke("CHECK", conf, pod_a, "pod-a", prev=res_a)
    for pod, cid in ((pod_a, "pod-a"), (pod_b, "pod-b")):
        node.invoke("DEL", conf, pod, cid)
    assert not [ln for ln in links(node.name) if ln.get("master") == "cni0"]


def _shape(result, pod):
    """The result with the fields that are random by nature replaced by their pattern."""
    wire = copy.deepcopy(result.to_wire())
    for iface in wire.get("interfaces", []):
        assert re.fullmatch(r"([0-9a-f]{2}:){5}[0-9a-f]{2}", iface.pop("mac"))
        if re.fullmatch(r"veth[0-9a-f]{8}", iface["name"]):
            iface["name"] = "veth<8 hex>"
        if "sandbox" in iface:
            assert iface["sandbox"] == pod
            iface["sandbox"] = "<netns>"
    return wire


@pytest.mark.parametrize("version", ["0.3.1", "0.4.0", "1.0.0"])
@pytest.mark.parametrize("options", [
    {"isDefaultGateway": True},
    {"isGateway": True, "ipam_routes": [{"dst": "192.168.0.0/16"}, {"dst": "fd99::/64", "gw": "fd77::fe"}]},
    {},
])
def test_result_matches_reference(node, box, version, options):
    options = dict(options)
    ipam_routes = options.pop("ipam_routes", None)
    conf = node.conf(cniVersion=version, **options)
    if "isDefaultGateway" not in options:
        del conf["isDefaultGateway"]
    if ipam_routes:
        conf["ipam"]["routes"] = ipam_routes
    ref_node = type(node)(box=box, name=box.netns("mcref"), root=node.root / "ref")
    ref_conf = copy.deepcopy(conf)
    ref_conf["ipam"]["dataDir"] = str(ref_node.data_dir)
    pod_ours, pod_ref = node.pod().path, node.pod().path
    try:
        ours = node.invoke("ADD", conf, pod_ours, "cmp")
        ref = ref_node.invoke("ADD", ref_conf, pod_ref, "cmp", invoker=Invoker(REFERENCE))
        assert _shape(ours, pod_ours) == _shape(ref, pod_ref)
        # Same kernel picture in both pods: addresses and routes on eth0.
        for cmd in (["ip", "-j", "-4", "route"], ["ip", "-j", "-6", "route", "show", "::/0"]):
            a = run(*cmd, netns=pod_ours.rsplit("/", 1)[1]).stdout
            b = run(*cmd, netns=pod_ref.rsplit("/", 1)[1]).stdout
            assert _routes(a) == _routes(b)
        if version != "0.3.1":  # CHECK exists from 0.4.0
            node.invoke("CHECK", conf, pod_ours, "cmp", prev=ours)
            if not ipam_routes:  # the reference CHECK wants gw-less routes installed without gw
                ref_node.invoke("CHECK", ref_conf, pod_ref, "cmp", invoker=Invoker(REFERENCE), prev=ref)
    finally:
        node.invoke("DEL", conf, pod_ours, "cmp")
        ref_node.invoke("DEL", ref_conf, pod_ref, "cmp", invoker=Invoker(REFERENCE))
        run("rm", "-rf", str(ref_node.data_dir))
    assert not any(n.startswith("veth") for n in link_names(node.name))


def _routes(text):
    return sorted((r["dst"], r.get("gateway"), r.get("scope")) for r in json.loads(text or "[]"))
