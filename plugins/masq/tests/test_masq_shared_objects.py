"""A fresh process's first nftables ADD keeps this version's shared objects and resets another's."""

from __future__ import annotations

from metacni.firewall import libnft
from metacni.firewall.libnft import PoolState
from metacni.firewall.masq import add_masquerade, del_masquerade
from metacni.firewall.nft import skeleton_marker, table
from metacni.firewall.plan import MASQ
from metacni.kernel import netns
from metacni_testkit.firewall_testbed import Testbed, ruleset
from metacni_testkit.netns import netns_path, run

TABLE = table(MASQ)


def _forget_process_state() -> None:
    """What a new CNI process knows about this netns: nothing."""
    with libnft.pooled() as entry:
        entry.state = PoolState()


def test_shared_objects_are_reset_only_for_another_version(box, tmp_path):
    tb = Testbed(box).setup(str(tmp_path))
    before = ruleset(tb.node)
    probe = ["nft", "add", "rule", "inet", TABLE, "postrouting", "counter", "comment", '"probe"']
    with netns.enter(netns_path(tb.node)):
        add_masquerade("sharednet", "a", "eth0", ["10.88.0.2/24"], backend="nftables")
        run(*probe, netns=tb.node)
        _forget_process_state()
        add_masquerade("sharednet", "b", "eth0", ["10.88.0.3/24"], backend="nftables")
        assert '"probe"' in ruleset(tb.node)  # marker found: no reset of the shared chains
        run("nft", "delete", "chain", "inet", TABLE, skeleton_marker(MASQ), netns=tb.node)  # another version
        _forget_process_state()
        add_masquerade("sharednet", "c", "eth0", ["10.88.0.4/24"], backend="nftables")
        after_reset = ruleset(tb.node)
        assert '"probe"' not in after_reset and skeleton_marker(MASQ) in after_reset
        assert all(ip in after_reset for ip in ("10.88.0.2", "10.88.0.3", "10.88.0.4"))
        for cid in ("a", "b", "c"):
            del_masquerade("sharednet", cid, "eth0", backend="nftables")
    assert ruleset(tb.node) == before
