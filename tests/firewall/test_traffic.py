"""Each feature on both backends with real traffic, through the firewall API alone (typed plans
in, rules out): pods come from the bridge plugin, the outside is a peer namespace."""

from __future__ import annotations

import ipaddress

import pytest

from metacni.firewall import backend as fw
from metacni.firewall.identity import Attachment
from metacni.firewall.plan import FORWARD, MASQ, PORTMAP, ForwardPlan, MasqPlan, PortmapPlan, parse_port_mappings
from metacni.kernel import netns
from metacni_testkit.firewall_testbed import (
    NODE_IP,
    OUTSIDE_IP,
    Testbed,
    ask,
    ruleset,
    start_echo,
    unreachable,
)
from metacni_testkit.netns import netns_path, run

BACKENDS = ["nftables", "iptables"]


def _pod(tb: Testbed, name: str) -> tuple[str, Attachment, ipaddress.IPv4Interface]:
    ns, res = tb.add_pod(name)
    return ns, Attachment(tb.network, name, "eth0"), ipaddress.IPv4Interface(res.ips[0].address)


@pytest.mark.parametrize("backend", BACKENDS)
def test_portmap_reaches_the_pod_from_outside(box, tmp_path, backend):
    tb = Testbed(box).setup(str(tmp_path), backend)
    before = ruleset(tb.node)
    ns, att, ip = _pod(tb, "pod-p")
    plan = PortmapPlan(att, parse_port_mappings([{"hostPort": 8080, "containerPort": 80},
                                                 {"hostPort": 8053, "containerPort": 53, "protocol": "udp"}]), ip)
    server = start_echo(ns, 80)
    udp = start_echo(ns, 53)
    try:
        assert unreachable(tb.outside, "tcp", NODE_IP, 8080)
        with netns.enter(netns_path(tb.node)):
            fw.add(plan, backend)
        assert ask(tb.outside, "tcp", NODE_IP, 8080) == OUTSIDE_IP  # DNAT, the source kept
        assert ask(tb.outside, "udp", NODE_IP, 8053) == OUTSIDE_IP
        with netns.enter(netns_path(tb.node)):
            fw.delete(att, PORTMAP, backend)
        assert unreachable(tb.outside, "tcp", NODE_IP, 8080)
    finally:
        server.stop()
        udp.stop()
    tb.del_pod("pod-p", ns)
    assert ruleset(tb.node) == before


@pytest.mark.parametrize("backend", BACKENDS)
def test_masq_outside_sees_the_node(box, tmp_path, backend):
    tb = Testbed(box).setup(str(tmp_path), backend)
    run("ip", "route", "add", "10.88.0.0/24", "via", NODE_IP, netns=tb.outside)  # replies could come back
    before = ruleset(tb.node)
    ns, att, ip = _pod(tb, "pod-m")
    server = start_echo(tb.outside, 9000)
    try:
        assert ask(ns, "tcp", OUTSIDE_IP, 9000) == str(ip.ip)  # routed, not masqueraded
        with netns.enter(netns_path(tb.node)):
            fw.add(MasqPlan(att, (ip,), (ipaddress.ip_network("10.96.0.0/12"),)), backend)
        assert ask(ns, "tcp", OUTSIDE_IP, 9000) == NODE_IP
        assert ask(ns, "udp", OUTSIDE_IP, 9000) == NODE_IP
        with netns.enter(netns_path(tb.node)):
            fw.delete(att, MASQ, backend)
        assert ask(ns, "tcp", OUTSIDE_IP, 9000) == str(ip.ip)
    finally:
        server.stop()
    tb.del_pod("pod-m", ns)
    assert ruleset(tb.node) == before


@pytest.mark.parametrize("backend", BACKENDS)
def test_forward_opens_a_drop_policy_for_the_pod_only(box, tmp_path, backend):
    tb = Testbed(box).setup(str(tmp_path), backend, forward="DROP")
    run("ip", "route", "add", "10.88.0.0/24", "via", NODE_IP, netns=tb.outside)
    before = ruleset(tb.node)
    (ns1, att1, ip1), (ns2, _att2, _ip2) = _pod(tb, "pod-f1"), _pod(tb, "pod-f2")
    server = start_echo(tb.outside, 9100)
    try:
        assert unreachable(ns1, "tcp", OUTSIDE_IP, 9100)
        with netns.enter(netns_path(tb.node)):
            fw.apply(ForwardPlan(att1, (ip1,)), backend)
        assert ask(ns1, "tcp", OUTSIDE_IP, 9100) == str(ip1.ip)
        assert unreachable(ns2, "tcp", OUTSIDE_IP, 9100)  # another pod is still dropped
        with netns.enter(netns_path(tb.node)):
            fw.apply(ForwardPlan(att1, ()), backend)  # nothing to install: removes
        assert unreachable(ns1, "tcp", OUTSIDE_IP, 9100)
        with netns.enter(netns_path(tb.node)):
            fw.delete(att1, FORWARD, backend)  # idempotent
    finally:
        server.stop()
    tb.del_pod("pod-f1", ns1)
    tb.del_pod("pod-f2", ns2)
    assert ruleset(tb.node) == before
