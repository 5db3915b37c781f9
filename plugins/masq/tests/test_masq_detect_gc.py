"""Backend detection in a node namespace, and GC of rules of invalid attachments."""

from __future__ import annotations

import pytest

from metacni.firewall import backend as fw
from metacni.firewall.masq import add_masquerade
from metacni.kernel import netns
from metacni_testkit.firewall_testbed import Testbed, prime_legacy, ruleset
from metacni_testkit.netns import netns_path, run


def test_masq_detection_follows_kube_proxy(box, tmp_path):
    tb = Testbed(box).setup(str(tmp_path))
    with netns.enter(netns_path(tb.node)):
        default = fw.detect("masq")
    assert default == (fw.iptables_alternative() or "nftables")
    run("iptables-legacy", "-t", "nat", "-N", "KUBE-SERVICES", netns=tb.node)
    with netns.enter(netns_path(tb.node)):
        assert fw.detect("masq") == "iptables"
    run("iptables-legacy", "-t", "nat", "-X", "KUBE-SERVICES", netns=tb.node)
    run("nft", "add", "table", "ip", "kube-proxy", netns=tb.node)
    with netns.enter(netns_path(tb.node)):
        assert fw.detect("masq") == "nftables"


@pytest.mark.parametrize("make", [
    ["nft", "add", "table", "ip6", "kube-proxy"],  # kube-proxy's nftables mode
    ["iptables-nft", "-t", "nat", "-N", "KUBE-POSTROUTING"],  # its iptables mode through iptables-nft
    ["ip6tables-nft", "-t", "filter", "-N", "KUBE-FORWARD"],
])
def test_kube_proxy_through_nftables_is_found_by_point_lookups(box, tmp_path, make):
    """Where the node's iptables alternative says legacy, only kube-proxy's nftables objects
    can make detection say nftables: each of them must be found."""
    tb = Testbed(box).setup(str(tmp_path))
    prime_legacy(tb.node)  # legacy tables present, no KUBE chains in them
    run("iptables-legacy", "-t", "nat", "-N", "KUBE-MARK-DROP", netns=tb.node)  # not a detection chain
    with netns.enter(netns_path(tb.node)):
        before = fw._nft_kube_proxy()
    run(*make, netns=tb.node)
    with netns.enter(netns_path(tb.node)):
        assert before is False and fw._nft_kube_proxy() is True
        assert fw.detect("masq") == "nftables"


@pytest.mark.parametrize("backend", ["nftables", "iptables"])
def test_masq_gc_keeps_only_valid_attachments(box, tmp_path, backend):
    tb = Testbed(box).setup(str(tmp_path), backend)
    before = ruleset(tb.node)
    conf = {"cniVersion": "1.1.0", "backend": backend}
    with netns.enter(netns_path(tb.node)):
        add_masquerade("gcnet", "keep", "eth0", ["10.88.0.2/24"], backend=backend)
        add_masquerade("gcnet", "stale", "eth0", ["10.88.0.3/24"], backend=backend)
        add_masquerade("othernet", "stale", "eth0", ["10.77.0.3/24"], backend=backend)
    with_keep = ruleset(tb.node)
    tb.network = "gcnet"
    tb.call(
        "masq",
        "GC",
        {**conf, "cni.dev/valid-attachments": [{"containerID": "keep", "ifname": "eth0"}]},
        "",
        "",
        None,
    )
    after = ruleset(tb.node)
    assert after != with_keep and "10.88.0.2" in after and "10.88.0.3" not in after and "10.77.0.3" in after
    tb.call("masq", "GC", {**conf, "cni.dev/valid-attachments": []}, "", "", None)
    tb.network = "othernet"
    tb.call("masq", "GC", {**conf, "cni.dev/valid-attachments": []}, "", "", None)
    assert ruleset(tb.node) == before
