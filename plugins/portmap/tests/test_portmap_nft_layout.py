"""The nftables layout's less travelled paths, in a test-created node namespace.

ADD/DEL normally run from memory (the attachment was added by this process). These cover
what a fresh process, a re-ADD or a stale attachment takes: DEL that reads the
attachment's own chains, the slow ADD that replaces an earlier ADD, eviction of a stale
holder of a host port, and the table going away with the last attachment (the anchor's
use count), after which the netns's pooled context is released.
"""

from __future__ import annotations

import ipaddress

from metacni.firewall import backend as fw
from metacni.firewall import libnft
from metacni.firewall.identity import Attachment
from metacni.firewall.masq import add_masquerade, del_masquerade
from metacni.firewall.plan import PORTMAP, PortmapPlan, parse_port_mappings
from metacni.kernel import netns
from metacni_testkit.firewall_testbed import ruleset
from metacni_testkit.netns import netns_path, run

NFT = "nftables"


def _plan(cid: str, ip: str, *mappings: dict[str, object]) -> PortmapPlan:
    return PortmapPlan(
        Attachment("layoutnet", cid, "eth0"),
        parse_port_mappings(list(mappings)),
        ipaddress.IPv4Interface(ip),
        ipaddress.IPv6Interface("fd00:77::" + ip.split(".")[-1].split("/")[0] + "/64"),
    )


def _forget() -> None:
    """Drop this process's pooled context and what it remembers (as a fresh process)."""
    with libnft.pooled() as entry:
        libnft.release(entry)


def _nft(node: str) -> str:
    return run("nft", "list", "ruleset", netns=node).stdout


def test_nft_layout_paths_a_fresh_process_takes(box):
    node = box.netns("mcfwl")
    before = ruleset(node)
    a = _plan("a", "10.77.0.2/24", {"hostPort": 31001, "containerPort": 80})
    b = _plan("b", "10.77.0.3/24", {"hostPort": 31002, "containerPort": 80, "hostIP": "192.0.2.9"})
    with netns.enter(netns_path(node)):
        fw.add(a, NFT)
        fw.add(b, NFT)
        add_masquerade("layoutnet", "a", "eth0", ["10.77.0.2/24", "fd00:77::2/64"], backend=NFT,
                       non_masquerade_cidrs=["10.96.0.0/12"])

        # re-ADD of a with other mappings (the slow path): only the new ones are left
        a2 = _plan("a", "10.77.0.2/24", {"hostPort": 31003, "containerPort": 81, "protocol": "udp"})
        fw.add(a2, NFT)
        fw.check(a2, NFT)
        rules = _nft(node)
        assert "31003" in rules and "31001" not in rules and "31002" in rules

        # DEL from a process that did not add it: found through its own chains
        _forget()
        fw.delete(a2.attachment, PORTMAP, NFT)
        del_masquerade("layoutnet", "a", "eth0", backend=NFT)
        rules = _nft(node)
        assert a2.attachment.tag not in rules and "31003" not in rules
        assert b.attachment.tag in rules and "31002" in rules
        assert "metacni_masq" not in rules  # its last attachment left: table gone

        # c takes b's host IP and port (b is stale: its DEL never came): b is evicted
        c = _plan("c", "10.77.0.4/24", {"hostPort": 31002, "containerPort": 80, "hostIP": "192.0.2.9"})
        fw.add(c, NFT)
        rules = _nft(node)
        assert c.attachment.tag in rules and b.attachment.tag not in rules
        # b's late DEL must leave c alone
        _forget()
        fw.delete(b.attachment, PORTMAP, NFT)
        fw.check(c, NFT)

        fw.delete(c.attachment, PORTMAP, NFT)
        # the last table of ours in the netns went: the context pinning it was released
        assert libnft.netns_key() not in libnft.pooled_netns()
        fw.delete(c.attachment, PORTMAP, NFT)  # again: a no-op
    assert ruleset(node) == before


def test_nft_gc_portmap_and_forward_keep_only_valid(box):
    """GC lists (it is periodic): stale attachments of the network go, chains, map elements
    and the accepts inserted in a foreign forward chain that drops; others stay."""
    from metacni.firewall.plan import FORWARD, ForwardPlan

    node = box.netns("mcfwg")
    run("iptables-nft", "-P", "FORWARD", "DROP", netns=node)  # ip filter FORWARD, policy drop
    before = ruleset(node)
    pods = {("gcnet", "keep"): "10.78.0.2", ("gcnet", "stale"): "10.78.0.3", ("othernet", "stale"): "10.78.0.4"}
    with netns.enter(netns_path(node)):
        for (network, cid), ip in pods.items():
            maps = parse_port_mappings([{"hostPort": 32000 + int(ip.rsplit(".", 1)[1]), "containerPort": 80}])
            fw.add(PortmapPlan(Attachment(network, cid, "eth0"), maps, ipaddress.IPv4Interface(ip + "/24")), NFT)
            fw.add(ForwardPlan(Attachment(network, cid, "eth0"), (ipaddress.IPv4Interface(ip + "/24"),)), NFT)
        foreign = run("nft", "list", "chain", "ip", "filter", "FORWARD", netns=node).stdout
        assert "10.78.0.3" in foreign and "10.78.0.2" in foreign  # accepts inserted there too
        for kind in (PORTMAP, FORWARD):
            fw.gc("gcnet", [("keep", "eth0")], kind)
        rules = _nft(node)
        assert "10.78.0.2" in rules and "10.78.0.4" in rules and "10.78.0.3" not in rules
        assert "32003" not in rules and "32002" in rules and "32004" in rules
        for kind in (PORTMAP, FORWARD):
            fw.gc("gcnet", [], kind)
            fw.gc("othernet", [], kind)
    assert ruleset(node) == before


_OWN_NETNS_SCRIPT = """
import ipaddress, json
from metacni.firewall import backend as fw, libnft
from metacni.firewall.identity import Attachment
from metacni.firewall.masq import add_masquerade, del_masquerade
from metacni.firewall.plan import PORTMAP, PortmapPlan, parse_port_mappings

def plan(cid, port):
    return PortmapPlan(Attachment("ownnet", cid, "eth0"),
                       parse_port_mappings([{"hostPort": port, "containerPort": 80}]),
                       ipaddress.IPv4Interface("10.78.0.2/24"), None)

libnft.set_home()  # as the daemon does at start
out = {"home": libnft.at_home()}
fw.add(plan("a", 31011))
add_masquerade("ownnet", "a", "eth0", ["10.78.0.2/24"])
fw.delete(plan("a", 31011).attachment, PORTMAP)
del_masquerade("ownnet", "a", "eth0")
with libnft.pooled() as entry:
    out["kept"] = libnft.netns_key() in libnft.pooled_netns()
    out["detected"] = sorted(entry.state.detected)
    out["tables"] = sorted(entry.state.tables)
fw.add(plan("b", 31012))  # the next pod after the last one: the same context, tables made again
out["second"] = True
fw.delete(plan("b", 31012).attachment, PORTMAP)
print(json.dumps(out))
"""


def test_home_netns_keeps_its_context_when_the_last_table_goes(box):
    """A process (the daemon) in its home netns keeps the pooled context and its backend
    decisions when its last attachment and table go: nothing to unpin there, and the next
    ADD neither detects again nor waits for a context close. The tables still go."""
    import json
    import sys

    node = box.netns("mcfwo")
    before = ruleset(node)
    done = run("ip", "netns", "exec", node, sys.executable, "-c", _OWN_NETNS_SCRIPT)
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out == {"home": True, "kept": True, "detected": ["masq", "portmap"], "tables": [], "second": True}
    assert ruleset(node) == before  # no table, chain or rule of ours left
