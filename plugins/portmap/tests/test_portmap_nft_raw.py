"""ADD's raw nf_tables batch (:mod:`metacni.netlink.nftables`) against libnftables' JSON path.

The same attachments are added through the raw path in one test-created netns and through
libnftables (``RAW_ADD = False``) in another; the tables must list the same, both as
``nft -j`` sees them and expression by expression (``nft --debug=netlink``). Then the verbs
that read rules (CHECK, GC, DEL from a fresh process, the slow re-ADD, eviction) run on
raw-made rules.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from metacni.firewall import backend as fw
from metacni.firewall import feature, libnft, nft
from metacni.firewall.identity import Attachment
from metacni.firewall.plan import (
    FORWARD,
    MASQ,
    PORTMAP,
    ForwardPlan,
    MasqPlan,
    Plan,
    PortmapPlan,
    parse_addresses,
    parse_cidrs,
    parse_port_mappings,
)
from metacni.kernel import netns
from metacni.netlink import nftables as nftnl
from metacni.netlink.core import Request, Socket
from metacni.spec.errors import CNIError
from metacni_testkit.firewall_testbed import ruleset
from metacni_testkit.netns import netns_path, run

NFT = "nftables"
NET = "rawnet"
V4, V6 = ipaddress.IPv4Interface, ipaddress.IPv6Interface
MAPPINGS = [
    {"hostPort": 31001, "containerPort": 80},  # any host IP, both families
    {"hostPort": 31002, "containerPort": 81, "protocol": "udp", "hostIP": "192.0.2.9"},
    {"hostPort": 31003, "containerPort": 82, "protocol": "sctp", "hostIP": "2001:db8::9"},
    {"hostPort": 31004, "containerPort": 83, "protocol": "udp", "hostIP": "0.0.0.0"},
    {"hostPort": 31005, "containerPort": 84, "protocol": "sctp"},
]


def _att(cid: str) -> Attachment:
    return Attachment(NET, cid, "eth0")


def _portmap(cid: str, v4: str | None, v6: str | None, base: int = 0, **kw: Any) -> PortmapPlan:
    """MAPPINGS with host ports moved by ``base`` (each attachment holds keys of its own)."""
    maps = parse_port_mappings([{**m, "hostPort": int(m["hostPort"]) + base} for m in MAPPINGS])
    return PortmapPlan(_att(cid), maps, V4(v4) if v4 else None, V6(v6) if v6 else None, **kw)


def _plans() -> list[Plan]:
    exempt = ["10.96.0.0/12", "10.0.0.0/8", "172.16.0.0/16", "192.168.7.128/25", "192.168.9.0/31",
              "198.51.100.7/32", "fd01::/63", "fd02::/65", "fd03::/48", "fd04::/127", "fd05::5/128"]
    return [
        _portmap("pm-dual", "10.61.0.2/24", "fd00:61::2/64"),
        _portmap("pm-nosnat", "10.61.0.3/24", "fd00:61::3/64", 10, snat=False),
        _portmap("pm-masqall", "10.61.0.4/24", "fd00:61::4/64", 20, masq_all=True),
        _portmap("pm-host", "10.61.0.5/32", "fd00:61::5/128", 30),  # host routes: plain source addresses
        _portmap("pm-v4", "10.61.0.6/23", None, 40),
        _portmap("pm-v6", None, "fd00:61::7/60", 50),
        MasqPlan(_att("mq-dual"), parse_addresses(["10.62.0.2/24", "fd00:62::2/64"]), parse_cidrs(exempt, "x")),
        MasqPlan(_att("mq-host"), parse_addresses(["10.62.0.3/32", "fd00:62::3/127"])),
        MasqPlan(_att("mq-v6"), parse_addresses(["fd00:62::4/65"]), parse_cidrs(["fd06::/9"], "x")),
        ForwardPlan(_att("fw-dual"), parse_addresses(["10.63.0.2/24", "fd00:63::2/64"])),
        ForwardPlan(_att("fw-v4"), parse_addresses(["10.63.0.3/32"])),
    ]


@contextmanager
def _inside(node: str) -> Iterator[None]:
    """Run in ``node``; drop this process's pooled context there afterwards, whatever happened."""
    with netns.enter(netns_path(node)):
        try:
            yield
        finally:
            with libnft.pooled() as entry:
                libnft.release(entry)


@pytest.fixture
def raw_batches(monkeypatch: pytest.MonkeyPatch) -> list[list[Request]]:
    """Message types of every raw batch the kernel took (the raw ADD's are those with rules)."""
    sent: list[list[Request]] = []
    real = nftnl.transaction

    def spy(sock: Socket, messages: list[Request]) -> None:
        real(sock, messages)
        sent.append(messages)

    monkeypatch.setattr(nftnl, "transaction", spy)
    return sent


def _added_raw(sent: list[list[Request]]) -> int:
    return sum(1 for batch in sent if any(map(nftnl.is_rule, batch)))


def _json(node: str, table: str) -> list[dict[str, Any]]:
    """``nft -j list table`` without handles, map elements sorted (a hash set lists in its
    per-set random seed's order)."""
    data = json.loads(run("nft", "-j", "list", "table", "inet", table, netns=node).stdout)
    out = []
    for obj in data["nftables"]:
        if "metainfo" in obj:
            continue
        ((kind, body),) = obj.items()
        body = {k: v for k, v in body.items() if k != "handle"}
        if "elem" in body:
            body["elem"] = sorted(body["elem"], key=json.dumps)
        out.append({kind: body})
    return out


_ELEMENT = re.compile(r"^\s+element ")


def _netlink(node: str, table: str) -> str:
    """The expressions as the kernel holds them (``nft --debug=netlink``), elements sorted."""
    lines = run("nft", "--debug=netlink", "list", "table", "inet", table, netns=node).stdout.splitlines()
    out: list[str] = []
    for line in lines:
        if _ELEMENT.match(line) and out and _ELEMENT.match(out[-1]):
            i = len(out)
            while i > 0 and _ELEMENT.match(out[i - 1]) and out[i - 1] > line:
                i -= 1
            out.insert(i, line)
        else:
            out.append(line)
    return "\n".join(out)


def test_raw_add_lists_as_libnftables_json_add(box, raw_batches, monkeypatch):
    raw, ref = box.netns("mcraw"), box.netns("mcref")
    before = ruleset(raw)
    plans = _plans()
    with _inside(raw):
        for plan in plans:
            fw.add(plan, NFT)
        assert _added_raw(raw_batches) == len(plans)  # every plan of the matrix went the raw way
        with _inside(ref):
            monkeypatch.setattr(nft, "RAW_ADD", False)
            for plan in plans:
                fw.add(plan, NFT)
            monkeypatch.setattr(nft, "RAW_ADD", True)
        assert _added_raw(raw_batches) == len(plans)
        for table in sorted(feature.nft_tables()):
            got, want = _json(raw, table), _json(ref, table)
            assert any("rule" in o for o in want)
            assert got == want, table
            assert _netlink(raw, table) == _netlink(ref, table), table
        listed = run("nft", "list", "table", "inet", "metacni_masq", netns=raw).stdout
        assert "ip daddr 10.96.0.0/12 return" in listed and "ip6 daddr fd02::/65 return" in listed
        assert f'comment "{plans[6].attachment.comment(MASQ)}"' in listed
        for plan in plans:  # DEL from memory of raw-made objects: the node as it was
            fw.check(plan, NFT)
            fw.delete(plan.attachment, plan.kind, NFT)
    assert ruleset(raw) == before


def test_raw_made_rules_check_gc_del_after_restart_and_readd(box, raw_batches):
    node = box.netns("mcrawl")
    before = ruleset(node)
    a = _portmap("a", "10.64.0.2/24", "fd00:64::2/64")
    a_masq = MasqPlan(_att("a"), parse_addresses(["10.64.0.2/24"]), parse_cidrs(["10.96.0.0/12"], "x"))
    a_fwd = ForwardPlan(_att("a"), parse_addresses(["10.64.0.2/24"]))
    b = PortmapPlan(_att("b"), parse_port_mappings([{"hostPort": 31100, "containerPort": 80, "hostIP": "192.0.2.9"}]),
                    V4("10.64.0.3/24"))
    with _inside(node):
        for plan in (a, a_masq, a_fwd, b):
            fw.add(plan, NFT)
        assert _added_raw(raw_batches) == 4
        for plan in (a, a_masq, a_fwd, b):
            fw.check(plan, NFT)

        # a fresh process (nothing in memory) checks, then re-ADDs a with other mappings:
        # the raw batch is refused (a's elements still point at its chains), the slow path reads
        with libnft.pooled() as entry:
            libnft.release(entry)
        fw.check(a, NFT)
        a2 = PortmapPlan(_att("a"), parse_port_mappings([{"hostPort": 31003, "containerPort": 90}]), V4("10.64.0.2/24"))
        fw.add(a2, NFT)
        assert _added_raw(raw_batches) == 4  # refused: none applied
        fw.check(a2, NFT)
        with pytest.raises(CNIError):
            fw.check(a, NFT)
        rules = run("nft", "list", "ruleset", netns=node).stdout
        assert "31003" in rules and "31001" not in rules and "31100" in rules

        # c takes b's host IP and port (b is stale): raw refused, b evicted by the slow path
        c = PortmapPlan(_att("c"), b.mappings, V4("10.64.0.4/24"))
        fw.add(c, NFT)
        assert _added_raw(raw_batches) == 4
        fw.check(c, NFT)
        with pytest.raises(CNIError):
            fw.check(b, NFT)

        # DEL after a restart: the map keys come from the raw-made rules (_keys)
        with libnft.pooled() as entry:
            libnft.release(entry)
        fw.delete(a2.attachment, PORTMAP, NFT)
        fw.delete(a_masq.attachment, MASQ, NFT)
        rules = run("nft", "list", "ruleset", netns=node).stdout
        assert a.attachment.tag not in run("nft", "list", "table", "inet", "metacni_portmap", netns=node).stdout
        assert "metacni_masq" not in rules and "31003" not in rules and "31100" in rules

        # GC: only c is valid, a's forward accepts go; then nothing of the network
        fw.gc(NET, [("c", "eth0")], FORWARD)
        assert "10.64.0.2" not in run("nft", "list", "ruleset", netns=node).stdout
        fw.gc(NET, [("c", "eth0")], PORTMAP)
        fw.check(c, NFT)
        fw.gc(NET, [], PORTMAP)
    assert ruleset(node) == before


def test_conditions_keep_the_libnftables_path(box, raw_batches):
    """User-given nft conditions are not encoded raw: that ADD is one libnftables batch."""
    node = box.netns("mcrawc")
    before = ruleset(node)
    plan = _portmap("cond", "10.65.0.2/24", None, conditions_v4=("iifname", "eth9", "ip", "saddr", "192.0.2.0/24"))
    with _inside(node):
        fw.add(plan, NFT)
        assert _added_raw(raw_batches) == 0
        fw.check(plan, NFT)
        listed = run("nft", "list", "table", "inet", "metacni_portmap", netns=node).stdout
        assert 'iifname "eth9" ip saddr 192.0.2.0/24' in listed
        fw.delete(plan.attachment, PORTMAP, NFT)
    assert ruleset(node) == before
