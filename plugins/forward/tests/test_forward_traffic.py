"""forward on its own: FORWARD policy DROP blocks pod traffic until the plugin runs."""

from __future__ import annotations

import pytest

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


@pytest.mark.parametrize("backend", ["nftables", "iptables"])
def test_forward_opens_a_drop_policy(box, tmp_path, backend):
    tb = Testbed(box).setup(str(tmp_path), backend, forward="DROP")
    # the outside can route back to the pods: no NAT involved, forwarding alone decides
    run("ip", "route", "add", "10.88.0.0/24", "via", NODE_IP, netns=tb.outside)
    before = ruleset(tb.node)
    ns, res = tb.add_pod("pod-f")
    server = start_echo(tb.outside, 9100)
    try:
        assert unreachable(ns, "tcp", OUTSIDE_IP, 9100)
        conf = {"backend": backend}
        tb.call("forward", "ADD", conf, "pod-f", netns_path(ns), res)
        assert ask(ns, "tcp", OUTSIDE_IP, 9100) == res.ips[0].address.split("/")[0]
        tb.call("forward", "CHECK", conf, "pod-f", netns_path(ns), res)
        tb.call("forward", "DEL", {}, "pod-f", "", None)  # identity only
        assert unreachable(ns, "tcp", OUTSIDE_IP, 9100)
    finally:
        server.stop()
    tb.del_pod("pod-f", ns)
    assert ruleset(tb.node) == before
