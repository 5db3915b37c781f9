"""macspoofchk: frames from a pod with a source MAC other than its own are dropped at the
bridge; DEL (with or without the pod netns), a repeated DEL and GC leave the node's nft
ruleset exactly as it was; CHECK notices missing rules; a failed ADD leaves nothing."""

from __future__ import annotations

import json

import pytest

from metacni.firewall.spoofcheck import CHAIN_PREFIX, del_spoofcheck
from metacni.kernel.netns import enter
from metacni.sim.traffic import ping, tcp_exchange
from metacni.spec.errors import CNIError
from metacni_testkit.netns import link_names, run

SPOOFED = "02:5b:00:f0:0f:01"


def _ruleset(node) -> str:
    return run("nft", "list", "ruleset", netns=node.name).stdout


def _chains(node) -> list[str]:
    data = json.loads(run("nft", "-j", "list", "ruleset", netns=node.name).stdout)
    return sorted(o["chain"]["name"] for o in data["nftables"]
                  if "chain" in o and o["chain"]["name"].startswith(CHAIN_PREFIX))


def _veths(node) -> list[str]:
    return sorted(n for n in link_names(node.name) if n.startswith("veth"))


def _name(pod: str) -> str:
    return pod.rsplit("/", 1)[1]


def _v4(result) -> str:
    return next(ip.address.split("/")[0] for ip in result.ips if ":" not in ip.address)


def _set_mac(pod: str, mac: str, peer: str) -> None:
    """Change the pod's eth0 MAC and make ``peer`` forget neighbours, so that any reply from
    the peer would have to resolve the pod again (and so reach it) if its frames got through."""
    run("ip", "link", "set", "eth0", "address", mac, netns=_name(pod))
    run("ip", "neigh", "flush", "dev", "eth0", netns=_name(peer))


def test_spoofed_source_mac_is_dropped(node):
    before = _ruleset(node)
    conf = node.conf(macspoofchk=True)
    pod_a, pod_b = node.pod().path, node.pod().path
    res_a = node.invoke("ADD", conf, pod_a, "spoof-a")
    res_b = node.invoke("ADD", conf, pod_b, "spoof-b")
    mac_a, ip_b = res_a.interfaces[2].mac, _v4(res_b)
    rules = _ruleset(node)
    assert "table bridge metacni_spoofcheck" in rules
    assert f"ether saddr {mac_a} accept" in rules and f'iifname "{res_a.interfaces[1].name}" jump' in rules
    assert len(_chains(node)) == 2

    ips_b = [ip.address.split("/")[0] for ip in res_b.ips]
    for ip in ips_b:
        assert ping(pod_a, ip), f"pod A cannot reach pod B at {ip} with its own MAC"
    assert tcp_exchange(pod_b, ip_b, pod_a) == b"HELLO OVER THE BRIDGE"

    _set_mac(pod_a, SPOOFED, pod_b)
    for ip in ips_b:
        assert not ping(pod_a, ip, timeout=1.5), f"spoofed frames from pod A reached {ip}"
    with pytest.raises(OSError):
        tcp_exchange(pod_b, ip_b, pod_a, port=7778, timeout=1.5)
    assert ping(pod_b, res_b.ips[0].gateway), "pod B lost the gateway while pod A was spoofing"

    _set_mac(pod_a, mac_a, pod_b)
    for ip in ips_b:
        assert ping(pod_a, ip), f"pod A cannot reach {ip} again after restoring its MAC"
    assert tcp_exchange(pod_b, ip_b, pod_a, port=7779) == b"HELLO OVER THE BRIDGE"

    # Control: the same spoofed MAC gets through once pod A's spoof check is gone, so the
    # drop above was the spoof check and not the MAC change itself.
    _set_mac(pod_a, SPOOFED, pod_b)
    with enter(node.path):
        del_spoofcheck(conf["name"], "spoof-a", "eth0")
    assert ping(pod_a, ip_b), "without its spoof check pod A should reach pod B with any MAC"
    assert len(_chains(node)) == 1

    node.invoke("DEL", conf, pod_a, "spoof-a")
    node.invoke("DEL", conf, pod_b, "spoof-b")
    assert _ruleset(node) == before
    assert _veths(node) == []


def test_del_without_netns_and_repeated_del_restore_ruleset(node):
    before = _ruleset(node)
    conf = node.conf(macspoofchk=True)
    pod_a, pod_b, pod_c = node.pod().path, node.pod().path, node.pod().path
    node.invoke("ADD", conf, pod_a, "gone-a")
    node.invoke("ADD", conf, pod_b, "gone-b")
    node.invoke("ADD", conf, pod_c, "gone-c")
    assert len(_chains(node)) == 3

    run("ip", "netns", "del", _name(pod_a))  # the runtime removed the netns first
    node.invoke("DEL", conf, pod_a, "gone-a")
    assert len(_chains(node)) == 2
    node.invoke("DEL", conf, pod_a, "gone-a")  # repeated
    node.invoke("DEL", conf, "", "gone-a")  # and with no CNI_NETNS at all
    assert len(_chains(node)) == 2

    node.invoke("DEL", conf, pod_b, "gone-b")
    run("ip", "netns", "del", _name(pod_c))
    node.invoke("DEL", conf, "", "gone-c")  # the last one, identity only: the table goes too
    assert _ruleset(node) == before
    node.invoke("DEL", conf, pod_b, "gone-b")
    node.invoke("DEL", conf, "", "gone-c")
    assert _ruleset(node) == before
    assert _veths(node) == []


def test_gc_removes_attachments_not_in_the_valid_list(node):
    before = _ruleset(node)
    conf = node.conf(macspoofchk=True, cniVersion="1.1.0")
    other = node.conf(macspoofchk=True, cniVersion="1.1.0", subnet4="10.78.0.0/24",
                      ranges=[[{"subnet": "10.78.0.0/24"}]], bridge="cni1", isDefaultGateway=False)
    pod_a, pod_b, pod_o = node.pod().path, node.pod().path, node.pod().path
    res_b = node.invoke("ADD", conf, pod_b, "gc-keep")
    node.invoke("ADD", conf, pod_a, "gc-stale")
    node.invoke("ADD", other, pod_o, "gc-stale")  # same container id, another network
    assert len(_chains(node)) == 3

    valid = [{"containerID": "gc-keep", "ifname": "eth0"}]
    node.invoke("GC", {**conf, "cni.dev/valid-attachments": valid}, "", "")
    rules = _ruleset(node)
    assert len(_chains(node)) == 2
    assert "id: gc-keep" in rules and f"ether saddr {res_b.interfaces[2].mac}" in rules
    assert f"net: {other['name']}, if: eth0, id: gc-stale" in rules  # other network untouched
    assert f"net: {conf['name']}, if: eth0, id: gc-stale" not in rules

    node.invoke("GC", {**conf, "cni.dev/valid-attachments": []}, "", "")
    node.invoke("GC", {**other, "cni.dev/valid-attachments": []}, "", "")
    assert _ruleset(node) == before
    for pod, cid, c in ((pod_a, "gc-stale", conf), (pod_b, "gc-keep", conf), (pod_o, "gc-stale", other)):
        node.invoke("DEL", c, pod, cid)
    assert _ruleset(node) == before
    assert _veths(node) == []


def test_check_reports_missing_spoofcheck(node):
    before = _ruleset(node)
    mac = "02:aa:bb:cc:dd:01"
    conf = node.conf(macspoofchk=True, runtimeConfig={"mac": mac}, capabilities={"mac": True})
    pod = node.pod().path
    res = node.invoke("ADD", conf, pod, "chk")
    assert res.interfaces[2].mac == mac and f"ether saddr {mac} accept" in _ruleset(node)
    node.invoke("CHECK", conf, pod, "chk", prev=res)

    chain = _chains(node)[0]
    run("nft", "flush", "chain", "bridge", "metacni_spoofcheck", chain, netns=node.name)
    with pytest.raises(CNIError) as err:
        node.invoke("CHECK", conf, pod, "chk", prev=res)
    assert "macspoofchk" in err.value.details and chain in err.value.details

    node.invoke("DEL", conf, pod, "chk")
    assert _ruleset(node) == before


def test_failed_add_leaves_no_spoofcheck(node):
    before = _ruleset(node)
    keep = node.conf(macspoofchk=True)
    pod_keep = node.pod().path
    node.invoke("ADD", keep, pod_keep, "rb-keep")
    with_keep = _ruleset(node)
    for expected in (with_keep, before):
        conf = node.conf(name=keep["name"], macspoofchk=True, ipam={"type": "no-such-ipam"})
        with pytest.raises(CNIError):
            node.invoke("ADD", conf, node.pod().path, "rb-fail")
        assert _ruleset(node) == expected
        node.invoke("DEL", keep, pod_keep, "rb-keep")
    assert _veths(node) == []
