"""nf_tables messages and transactions (metacni.netlink.nftables) against the kernel, read back
with ``nft``: lookups, all-or-nothing batches and the encoder's rules."""

from __future__ import annotations

import errno
import json

import pytest

from metacni.kernel.netns import enter
from metacni.netlink import nftables as nftnl
from metacni.netlink.core import NetlinkError
from metacni_testkit.netns import Sandbox, netns_path, run


def _setup(box: Sandbox) -> str:
    ns = box.netns("mcnft")
    run("nft", "-f", "-", netns=ns, input="table inet t {\n map m {\n  type ipv4_addr : verdict\n }\n}\n")
    return ns


def _chains(ns: str) -> list[str]:
    out = json.loads(run("nft", "-j", "list", "table", "inet", "t", netns=ns).stdout)["nftables"]
    return sorted(o["chain"]["name"] for o in out if "chain" in o)


def test_lookups(box: Sandbox):
    ns = _setup(box)
    with enter(netns_path(ns)), nftnl.socket() as sock:
        assert nftnl.table_exists(sock, "inet", "t")
        assert not nftnl.table_exists(sock, "inet", "nope")
        assert nftnl.chain_use(sock, "inet", "t", "c") is None
        nftnl.transaction(sock, [nftnl.chain("add", "inet", "t", "c"), nftnl.chain("add", "inet", "t", "d"),
                                 nftnl.rule("inet", "t", "c", [{"goto": {"target": "d"}}], None),
                                 nftnl.element("add", "inet", "t", "m", bytes([10, 0, 0, 1]), "d")])
        assert nftnl.chain_use(sock, "inet", "t", "c") == 1  # its rule
        assert nftnl.chain_use(sock, "inet", "t", "d") == 2  # the goto and the map element
    listing = run("nft", "list", "table", "inet", "t", netns=ns).stdout
    assert "goto d" in listing and "10.0.0.1 : jump d" in listing


def test_a_refused_transaction_applies_nothing_and_says_which_message(box: Sandbox):
    ns = _setup(box)
    with enter(netns_path(ns)), nftnl.socket() as sock:
        with pytest.raises(NetlinkError) as exc:
            nftnl.transaction(sock, [nftnl.chain("add", "inet", "t", "a"), nftnl.chain("delete", "inet", "t", "nope")])
        assert exc.value.errno == errno.ENOENT
        assert "message 2" in str(exc.value)
        # the socket reads its own answers afterwards
        nftnl.transaction(sock, [nftnl.chain("add", "inet", "t", "b")])
        assert nftnl.chain_use(sock, "inet", "t", "b") == 0
    assert _chains(ns) == ["b"]


def test_rule_encoder_refuses_what_it_does_not_model():
    with pytest.raises(nftnl.Unsupported):
        nftnl.rule("ip", "t", "c", [{"accept": None}], None)
    with pytest.raises(nftnl.Unsupported):
        nftnl.rule("inet", "t", "c", [{"match": {"left": {"meta": {"key": "iifname"}}, "right": "x", "op": "=="}}],
                   None)
