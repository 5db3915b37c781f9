"""nf_tables messages and transactions (metacni.netlink.nftables) against the kernel, read back
with ``nft``: lookups, all-or-nothing batches and the encoder's rules."""

from __future__ import annotations

import errno
import json
import threading
from typing import Any

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


def _in_thread(fn: Any, limit: float = 60.0) -> Any:
    """``fn()`` on a daemon thread: a call that never returns fails the test instead of hanging it."""
    out: list[Any] = []
    t = threading.Thread(target=lambda: out.append(_outcome(fn)), daemon=True)
    t.start()
    t.join(limit)
    assert not t.is_alive(), f"no answer within {limit}s (acknowledgements lost?)"
    kind, value = out[0]
    if kind == "raise":
        raise value
    return value


def _outcome(fn: Any) -> tuple[str, Any]:
    try:
        return "return", fn()
    except BaseException as exc:  # noqa: BLE001 - re-raised on the test's thread
        return "raise", exc


@pytest.mark.parametrize("count", [1, 300, 3000])
def test_a_transaction_of_many_messages_completes(box: Sandbox, count: int):
    """A transaction asks for one acknowledgement, not one per message: with one per message,
    a few hundred (a pod with 64 host ports, its DEL) overflowed the socket's receive buffer,
    the kernel dropped the rest, and the call waited forever (found by a test of the bounds
    on annotation host ports, 2026-12-03)."""
    ns = _setup(box)
    keys = [bytes([10, 1, i // 256, i % 256]) for i in range(count)]
    with enter(netns_path(ns)), nftnl.socket() as sock:
        _in_thread(lambda: nftnl.transaction(sock, [nftnl.chain("add", "inet", "t", "d"),
                                                    *(nftnl.element("add", "inet", "t", "m", k, "d") for k in keys)]))
        assert nftnl.chain_use(sock, "inet", "t", "d") == count
        # the same socket reads its own answers afterwards, and a refusal among many is named
        with pytest.raises(NetlinkError) as exc:
            _in_thread(lambda: nftnl.transaction(sock, [*(nftnl.element("delete", "inet", "t", "m", k) for k in keys),
                                                        nftnl.chain("delete", "inet", "t", "nope"),
                                                        nftnl.chain("add", "inet", "t", "e")]))
        assert exc.value.errno == errno.ENOENT and f"message {count + 1}" in str(exc.value)
        assert nftnl.chain_use(sock, "inet", "t", "d") == count  # nothing of it applied
        _in_thread(lambda: nftnl.transaction(sock, [*(nftnl.element("delete", "inet", "t", "m", k) for k in keys),
                                                    nftnl.chain("delete", "inet", "t", "d")]))
        assert nftnl.chain_use(sock, "inet", "t", "d") is None
    assert _chains(ns) == []
