"""The one send/ack loop (metacni.netlink.core.Socket) against the kernel: requests, pipelined
batches that keep going, dumps, and the kernel's extended-ack text in the errors."""

from __future__ import annotations

import errno

import pytest
from hypothesis import given
from hypothesis import strategies as st

from metacni.kernel.netns import enter
from metacni.netlink import core
from metacni.netlink import rtnl as nl
from metacni.netlink.rtnl import LinkSpec, Rtnl
from metacni_testkit.netns import Sandbox, netns_path, run


def test_extended_ack_text_reaches_the_error(box: Sandbox):
    """An unknown link kind: the kernel says why in an extended ack, and the error carries it."""
    ns = box.netns("mcnlc")
    with enter(netns_path(ns)), Rtnl() as sock, pytest.raises(core.NetlinkError) as exc:
        sock.request(nl.newlink(LinkSpec(name="x0", kind="bridge", mtu=70000), create=True), "create x0")
    assert exc.value.errno == errno.EINVAL
    assert str(exc.value).startswith("[Errno 22] create x0: Invalid argument (")  # the kernel's reason follows
    assert "x0" not in run("ip", "-o", "link", netns=ns).stdout


def test_batch_answers_in_order_and_dump_reads_every_part(box: Sandbox):
    ns = box.netns("mcnlc")
    names = [f"d{i}" for i in range(40)]  # bridges: the dummy module may be missing
    with enter(netns_path(ns)), Rtnl() as sock:
        made = sock.batch([nl.newlink(LinkSpec(name=n, kind="bridge"), create=True) for n in names])
        assert made == [[]] * len(names)
        again = sock.batch([nl.newlink(LinkSpec(name="d0", kind="bridge"), create=True), nl.getlink("d1")],
                           ["create d0", "get d1"])
        assert isinstance(again[0], core.NetlinkError) and again[0].errno == errno.EEXIST
        assert isinstance(again[1], list) and nl.parse_link(again[1][0]).name == "d1"
        dumped = {nl.parse_link(p).name for p in sock.dump(nl.dumplinks())}
    assert dumped == {"lo", *names}


def test_the_socket_stays_in_the_netns_it_was_opened_in(box: Sandbox):
    ns = box.netns("mcnlc")
    with enter(netns_path(ns)):
        sock = Rtnl()
    try:
        sock.request(nl.newlink(LinkSpec(name="only0", kind="bridge"), create=True))
    finally:
        sock.close()
    assert "only0" in run("ip", "-o", "link", netns=ns).stdout
    assert "only0" not in run("ip", "-o", "link").stdout


@given(st.lists(st.tuples(st.integers(1, 0x3FFF), st.binary(max_size=40)), max_size=8))
def test_error_detail_is_found_after_a_capped_or_full_request(attrs):
    """ack_detail skips the request copy whichever way the kernel sent it."""
    text = core.string(core.NLMSGERR_ATTR_MSG, "why")
    request = core.message(16, 5, 9, b"".join(core.attr(k, v) for k, v in attrs))
    full = core.NLMSGERR.pack(-22) + request + text
    capped = core.NLMSGERR.pack(-22) + request[:core.NLMSGHDR.size] + text
    assert core.ack_detail(full, core.NLM_F_ACK_TLVS) == "why"
    assert core.ack_detail(capped, core.NLM_F_ACK_TLVS | core.NLM_F_CAPPED) == "why"
    assert core.ack_detail(capped, core.NLM_F_CAPPED) == ""
