"""The firewall core on both backends, in a real node namespace: per-attachment ownership
(ADD replaces, DEL removes exactly the attachment's rules, from memory or by reading), CHECK,
GC, shared objects removed with the last attachment, and the typed per-netns pool state."""

from __future__ import annotations

import ipaddress
import threading

import pytest

from metacni.firewall import backend as fw
from metacni.firewall import feature, libnft
from metacni.firewall.identity import Attachment
from metacni.firewall.libnft import PoolState
from metacni.firewall.plan import FORWARD, MASQ, PORTMAP, ForwardPlan, MasqPlan, Plan, PortmapPlan, parse_port_mappings
from metacni.kernel import netns
from metacni.spec.errors import CNIError
from metacni_testkit.firewall_testbed import prime_legacy, ruleset
from metacni_testkit.netns import Sandbox, netns_path

BACKENDS = ["nftables", "iptables"]


def _plan(kind: str, network: str, cid: str, last: int) -> Plan:
    att = Attachment(network, cid, "eth0")
    v4 = ipaddress.IPv4Interface(f"10.77.0.{last}/24")
    v6 = ipaddress.IPv6Interface(f"fd77::{last}/64")
    if kind == PORTMAP:
        maps = parse_port_mappings([{"hostPort": 31000 + last, "containerPort": 80},
                                    {"hostPort": 31000 + last, "containerPort": 53, "protocol": "udp"}])
        return PortmapPlan(att, maps, v4, v6)
    if kind == MASQ:
        return MasqPlan(att, (v4, v6), (ipaddress.ip_network("10.96.0.0/12"),))
    return ForwardPlan(att, (v4, v6))


def _node(box: Sandbox, backend: str) -> str:
    node = box.netns("mcfwc")
    if backend == "iptables":
        prime_legacy(node)
    return node


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("kind", [PORTMAP, MASQ, FORWARD])
def test_add_check_replace_delete_per_attachment(box, backend, kind):
    node = _node(box, backend)
    before = ruleset(node)
    a, b = _plan(kind, "fwnet", "a", 2), _plan(kind, "fwnet", "b", 3)
    with netns.enter(netns_path(node)):
        fw.add(a, backend)
        fw.add(b, backend)
        fw.check(a, backend)
        fw.add(a, backend)  # a re-ADD replaces, it does not duplicate
        fw.check(a, backend)
        with_both = ruleset(node)
        assert "10.77.0.2" in with_both and "10.77.0.3" in with_both and "fd77::2" in with_both
        fw.delete(a.attachment, kind, backend)
        with pytest.raises(CNIError) as exc:
            fw.check(a, backend)
        assert "missing" in exc.value.msg
        fw.check(b, backend)  # b's rules untouched
        left = ruleset(node)
        assert "10.77.0.2" not in left and "10.77.0.3" in left
        fw.delete(a.attachment, kind, backend)  # again: a no-op
        fw.delete(b.attachment, kind, backend)
    assert ruleset(node) == before  # the last attachment took the shared objects with it


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_re_add_lists_exactly_as_one_add(box, backend):
    """ADD replaces the attachment's rules: twice lists as once."""
    once, twice = _node(box, backend), _node(box, backend)
    plan = _plan(PORTMAP, "fwnet", "a", 2)
    with netns.enter(netns_path(once)):
        fw.add(plan, backend)
    with netns.enter(netns_path(twice)):
        fw.add(plan, backend)
        fw.add(plan, backend)
    assert ruleset(once) == ruleset(twice)
    for node in (once, twice):
        with netns.enter(netns_path(node)):
            fw.delete(plan.attachment, PORTMAP, backend)


@pytest.mark.parametrize("backend", BACKENDS)
def test_gc_keeps_only_valid_attachments_of_the_network(box, backend):
    node = _node(box, backend)
    before = ruleset(node)
    keep, stale, other = (_plan(MASQ, "gcnet", "keep", 2), _plan(MASQ, "gcnet", "stale", 3),
                          _plan(MASQ, "othernet", "x", 4))
    with netns.enter(netns_path(node)):
        for plan in (keep, stale, other):
            fw.add(plan, backend)
        fw.gc("gcnet", [("keep", "eth0")], MASQ)
        fw.check(keep, backend)
        fw.check(other, backend)
        with pytest.raises(CNIError):
            fw.check(stale, backend)
        fw.gc("gcnet", [], MASQ)
        fw.gc("othernet", [], MASQ)
    assert ruleset(node) == before


@pytest.mark.parametrize("kind", [PORTMAP, MASQ, FORWARD])
def test_nft_del_without_memory_reads_the_attachments_chains(box, kind):
    """A fresh process (empty pool state) deletes what another process added."""
    node = _node(box, "nftables")
    before = ruleset(node)
    plan = _plan(kind, "memnet", "a", 5)
    with netns.enter(netns_path(node)):
        fw.add(plan, "nftables")
        with libnft.pooled() as entry:
            assert (kind, plan.attachment.tag) in entry.state.owned
            assert kind in entry.state.tables
            entry.state = PoolState()  # what a new CNI process knows about this netns: nothing
        fw.delete(plan.attachment, kind, "nftables")
        with libnft.pooled() as entry:
            assert entry.state.owned == {}
    assert ruleset(node) == before


def test_pool_state_remembers_the_backend_decision_per_feature(box):
    node = _node(box, "nftables")
    with netns.enter(netns_path(node)):
        fw.choose(None, MASQ)
        with libnft.pooled() as entry:
            name, when = entry.state.detected[MASQ]
            assert name in BACKENDS and when > 0
            assert PORTMAP not in entry.state.detected
            libnft.release(entry)


def test_each_feature_has_its_own_table(box):
    node = _node(box, "nftables")
    with netns.enter(netns_path(node)):
        for kind in (PORTMAP, MASQ, FORWARD):
            fw.add(_plan(kind, "tnet", "a", 6), "nftables")
    listed = ruleset(node)
    for kind in (PORTMAP, MASQ, FORWARD):
        assert f"table inet {feature.of(kind).nft_table}" in listed
    with netns.enter(netns_path(node)):
        for kind in (PORTMAP, MASQ, FORWARD):
            fw.delete(Attachment("tnet", "a", "eth0"), kind, "nftables")
    assert "metacni_" not in ruleset(node)


@pytest.mark.parametrize("backend", BACKENDS)
def test_concurrent_attachments_in_one_netns(box, backend):
    """The daemon serves pods in parallel threads: each ADD/DEL keeps to its attachment, and the
    last DEL leaves the node as it was (pool entry and file locks serialise what must be)."""
    node = _node(box, backend)
    before = ruleset(node)
    plans = [MasqPlan(Attachment("conet", f"c{i}", "eth0"), (ipaddress.IPv4Interface(f"10.79.0.{i + 2}/24"),))
             for i in range(6)]
    errors: list[BaseException] = []

    def cycle(plan: MasqPlan) -> None:
        try:
            with netns.enter(netns_path(node)):
                fw.add(plan, backend)
                fw.check(plan, backend)
                fw.delete(plan.attachment, MASQ, backend)
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=cycle, args=(plan,)) for plan in plans]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads)
    assert errors == []
    assert ruleset(node) == before
