"""portmap with real traffic: outside, node address, 127.0.0.1, hairpin -- on both backends."""

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

BACKENDS = ["nftables", "iptables"]


def chain(backend: str, mappings: list[dict]) -> list[tuple[str, dict]]:
    return [
        (
            "portmap",
            {
                "backend": backend,
                "capabilities": {"portMappings": True},
                "runtimeConfig": {"portMappings": mappings},
            },
        ),
        ("masq", {"backend": backend}),
        ("forward", {"backend": backend}),
    ]


@pytest.mark.parametrize("backend", BACKENDS)
def test_portmap_tcp_udp_from_everywhere(box, tmp_path, backend):
    tb = Testbed(box).setup(str(tmp_path), backend, forward="DROP")
    before = ruleset(tb.node)
    ns, res = tb.add_pod("pod-a")
    # containerd's casing for one entry, CRI-O's for the others
    mappings = [
        {"HostPort": 8080, "ContainerPort": 80, "Protocol": "tcp", "HostIP": ""},
        {"hostPort": 8080, "containerPort": 80, "protocol": "udp"},
        {"hostPort": 8443, "containerPort": 80, "protocol": "tcp", "hostIP": NODE_IP},
    ]
    steps = chain(backend, mappings)
    prev = res
    for plugin, conf in steps:
        prev = tb.call(plugin, "ADD", conf, "pod-a", netns_path(ns), prev)
    server = start_echo(ns, 80)
    try:
        assert ask(tb.outside, "tcp", NODE_IP, 8080) == OUTSIDE_IP
        assert ask(tb.outside, "udp", NODE_IP, 8080) == OUTSIDE_IP
        assert ask(tb.outside, "tcp", NODE_IP, 8443) == OUTSIDE_IP
        assert ask(tb.node, "tcp", NODE_IP, 8080)
        assert ask(tb.node, "udp", NODE_IP, 8080)
        assert ask(tb.node, "tcp", "127.0.0.1", 8080)
        # hairpin: the pod reaches itself through the node's hostPort, masqueraded
        assert ask(ns, "tcp", NODE_IP, 8080) != pod_ip(res)
        assert ask(ns, "udp", NODE_IP, 8080) != pod_ip(res)
        for plugin, conf in steps:
            tb.call(plugin, "CHECK", conf, "pod-a", netns_path(ns), prev)
    finally:
        server.stop()
    for plugin, conf in reversed(steps):
        tb.call(plugin, "DEL", conf, "pod-a", netns_path(ns), prev)
    tb.del_pod("pod-a", ns)
    assert ruleset(tb.node) == before


@pytest.mark.parametrize("backend", BACKENDS)
def test_portmap_check_fails_when_rules_are_gone_and_del_needs_nothing(box, tmp_path, backend):
    tb = Testbed(box).setup(str(tmp_path), backend)
    before = ruleset(tb.node)
    ns, res = tb.add_pod("pod-c")
    conf = chain(backend, [{"hostPort": 9090, "containerPort": 90, "protocol": "tcp"}])[0][1]
    tb.call("portmap", "ADD", conf, "pod-c", netns_path(ns), res)
    tb.call("portmap", "CHECK", conf, "pod-c", netns_path(ns), res)  # IPv4-only pod: must pass
    bare = {"backend": backend}
    tb.call("portmap", "DEL", bare, "pod-c", "", None)  # no runtimeConfig, no prevResult, no netns
    from metacni.plugin import CNIError

    with pytest.raises(CNIError):
        tb.call("portmap", "CHECK", conf, "pod-c", netns_path(ns), res)
    tb.del_pod("pod-c", ns)
    assert ruleset(tb.node) == before
