"""masq + forward with real traffic, FORWARD policy DROP, on both backends."""

from __future__ import annotations

import pytest

from metacni_testkit.firewall_testbed import (
    NODE_IP,
    OUTSIDE_IP,
    Testbed,
    ask,
    pod_ip,
    ruleset,
    start_echo,
)
from metacni_testkit.netns import netns_path


@pytest.mark.parametrize("backend", ["nftables", "iptables"])
def test_masq_outside_sees_node_and_pods_see_each_other(box, tmp_path, backend):
    tb = Testbed(box).setup(str(tmp_path), backend, forward="DROP")
    before = ruleset(tb.node)
    steps = [
        ("masq", {"backend": backend, "nonMasqueradeCIDRs": ["10.96.0.0/12"]}),
        ("forward", {"backend": backend}),
    ]
    pods = {}
    for name in ("pod-m1", "pod-m2"):
        ns, res = tb.add_pod(name)
        prev = res
        for plugin, conf in steps:
            prev = tb.call(plugin, "ADD", conf, name, netns_path(ns), prev)
        pods[name] = (ns, res)
    (ns1, res1), (ns2, _res2) = pods["pod-m1"], pods["pod-m2"]
    outside = start_echo(tb.outside, 9000)
    inside = start_echo(ns2, 9001)
    try:
        assert ask(ns1, "tcp", OUTSIDE_IP, 9000) == NODE_IP
        assert ask(ns1, "udp", OUTSIDE_IP, 9000) == NODE_IP
        assert ask(ns1, "tcp", pod_ip(pods["pod-m2"][1]), 9001) == pod_ip(res1)
        assert ask(ns1, "udp", pod_ip(pods["pod-m2"][1]), 9001) == pod_ip(res1)
        for name, (ns, res) in pods.items():
            for plugin, conf in steps:
                tb.call(plugin, "CHECK", conf, name, netns_path(ns), res)
    finally:
        outside.stop()
        inside.stop()
    for name, (ns, res) in pods.items():
        for plugin, conf in reversed(steps):
            tb.call(plugin, "DEL", conf, name, netns_path(ns), res)
        tb.del_pod(name, ns)
    assert ruleset(tb.node) == before


@pytest.mark.parametrize("backend", ["nftables", "iptables"])
def test_masq_api_without_addresses_and_after_netns_gone(box, tmp_path, backend):
    from metacni.firewall.masq import add_masquerade, del_masquerade
    from metacni.kernel import netns

    tb = Testbed(box).setup(str(tmp_path), backend)
    before = ruleset(tb.node)
    with netns.enter(netns_path(tb.node)):
        add_masquerade(
            "net-x",
            "cid-1",
            "eth0",
            ["10.88.0.7/24", "fd00::7/64"],
            backend=backend,
            non_masquerade_cidrs=["10.96.0.0/12"],
        )
        add_masquerade("net-x", "cid-1", "eth0", ["10.88.0.7/24"], backend=backend)  # re-ADD replaces
    assert ruleset(tb.node) != before
    with netns.enter(netns_path(tb.node)):
        del_masquerade("net-x", "cid-1", "eth0")  # detection + both backends, no addresses
        del_masquerade("net-x", "cid-1", "eth0", backend=backend)  # idempotent
    assert ruleset(tb.node) == before
