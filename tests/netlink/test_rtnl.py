"""The rtnetlink codec (metacni.netlink.rtnl): encoders against decoders (hypothesis), and against the kernel.

The round trips check what the encoders put on the wire is what the decoders read back; the
namespace tests check the kernel agrees (a link, address and route made through the codec and
read back through ``ip -j``), and that failures carry their errno.
"""

from __future__ import annotations

import errno
import ipaddress
import json
import socket

import pytest
from hypothesis import given
from hypothesis import strategies as st

from metacni.kernel import links
from metacni.kernel.netns import enter
from metacni.netlink import core
from metacni.netlink import rtnl as nl
from metacni.netlink.rtnl import NetlinkError, Rtnl, is_errno
from metacni_testkit.netns import Sandbox, netns_path, run

names = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-_.", min_size=1, max_size=15)
macs = st.binary(min_size=6, max_size=6).map(nl.mac_str)
v4 = st.builds(ipaddress.IPv4Interface, st.tuples(st.integers(0, 2**32 - 1), st.integers(0, 32)))
v6 = st.builds(ipaddress.IPv6Interface, st.tuples(st.integers(0, 2**128 - 1), st.integers(0, 128)))
nets = st.one_of(v4, v6).map(lambda i: i.network)


def _one(req: nl.Request, seq: int = 7) -> tuple[int, int, int, bytes]:
    mtype, flags, body = req
    (msg,) = list(core.messages(core.message(mtype, core.NLM_F_REQUEST | flags, seq, body)))
    return msg


@given(index=st.integers(0, 2**31 - 1), name=names, mtu=st.integers(0, 65535), mac=st.one_of(st.none(), macs),
       master=st.one_of(st.none(), st.integers(0, 2**31 - 1)), up=st.one_of(st.none(), st.booleans()),
       alias=st.one_of(st.none(), names), kind=st.sampled_from(["bridge", "veth", "dummy"]),
       group=st.one_of(st.none(), st.integers(0, 2**32 - 1)))
def test_newlink_round_trip(index, name, mtu, mac, master, up, alias, kind, group):
    spec = nl.LinkSpec(index=index, name=name, kind=kind, mtu=mtu, mac=mac, master=master, up=up, alias=alias,
                       group=group)
    mtype, flags, _seq, payload = _one(nl.newlink(spec, create=True))
    assert mtype == nl.RTM_NEWLINK and flags & core.NLM_F_CREATE and flags & core.NLM_F_EXCL
    info = nl.parse_link(payload)
    assert (info.index, info.name, info.mtu, info.master, info.kind) == (index, name, mtu, master, kind)
    assert info.mac == (mac or "")
    assert info.alias == (alias or "")
    assert info.admin_up == bool(up)
    assert info.group == (group or 0)


@given(peer=names, mac=macs, fd=st.integers(0, 1 << 20))
def test_veth_peer_is_nested_with_its_netns(peer, mac, fd):
    spec = nl.LinkSpec(name="h", kind="veth", peer=nl.LinkSpec(name=peer, mac=mac, netns_fd=fd))
    _, _, _, payload = _one(nl.newlink(spec, create=True))
    attrs = core.parse_attrs(payload, nl.IFINFOMSG.size)
    assert nl.IFLA_NET_NS_FD not in attrs  # the host end stays here
    data = core.parse_attrs(core.parse_attrs(attrs[nl.IFLA_LINKINFO])[nl.IFLA_INFO_DATA])
    peer_info = nl.parse_link(data[nl.VETH_INFO_PEER])
    assert (peer_info.name, peer_info.mac) == (peer, mac)
    assert core.get_u32(core.parse_attrs(data[nl.VETH_INFO_PEER], nl.IFINFOMSG.size), nl.IFLA_NET_NS_FD) == fd


@given(address=st.one_of(v4, v6), index=st.integers(1, 2**31 - 1), nodad=st.booleans())
def test_addr_round_trip(address, index, nodad):
    _, flags, _, payload = _one(nl.addr(nl.RTM_NEWADDR, index, address, nodad=nodad))
    assert flags & core.NLM_F_EXCL
    info = nl.parse_addr(payload)
    assert info is not None and (info.index, info.address) == (index, address)
    assert bool(payload[2] & nl.IFA_F_NODAD) == (nodad and address.version == 6)


@given(dst=nets, gw=st.one_of(st.none(), st.booleans()), oif=st.one_of(st.none(), st.integers(1, 2**31 - 1)),
       table=st.integers(1, 2**32 - 1), proto=st.one_of(st.none(), st.integers(0, 255)),
       priority=st.one_of(st.none(), st.integers(0, 2**32 - 1)), mtu=st.one_of(st.none(), st.integers(1, 65535)),
       advmss=st.one_of(st.none(), st.integers(1, 65535)))
def test_route_round_trip(dst, gw, oif, table, proto, priority, mtu, advmss):
    gateway = (dst.network_address + 1) if gw and dst.num_addresses > 1 else None
    msg = nl.RouteMsg(dst=dst, gateway=gateway, oif=oif, table=table, proto=proto, priority=priority, mtu=mtu,
                      advmss=advmss)
    _, _, _, payload = _one(nl.route(nl.RTM_NEWROUTE, msg))
    back = nl.parse_route(payload)
    assert back is not None
    assert (back.dst, back.gateway, back.oif, back.table, back.priority, back.mtu, back.advmss) == (
        dst, gateway, oif, table, priority, mtu, advmss)
    assert back.proto == (nl.RTPROT_BOOT if proto is None else proto)
    assert back.scope == (nl.RT_SCOPE_UNIVERSE if gateway else nl.RT_SCOPE_LINK)


@given(st.lists(st.tuples(st.integers(1, 0x3FFF), st.binary(max_size=40)), max_size=8, unique_by=lambda t: t[0]))
def test_attrs_round_trip_with_padding(items):
    blob = b"".join(core.attr(k, v) for k, v in items)
    assert len(blob) % 4 == 0
    assert core.parse_attrs(blob) == dict(items)


@given(st.lists(st.binary(max_size=30), max_size=6))
def test_several_messages_in_one_datagram(bodies):
    data = b"".join(core.message(nl.RTM_NEWLINK, 0, i, b) for i, b in enumerate(bodies))
    assert len(data) % 4 == 0
    assert [(seq, payload) for _, _, seq, payload in core.messages(data)] == list(enumerate(bodies))


def test_brport_flags_are_nested_protinfo():
    mtype, _, body = nl.brport(5, hairpin=True, isolated=False)
    family, _, index, _, _ = nl.IFINFOMSG.unpack_from(body)
    assert (mtype, family, index) == (nl.RTM_SETLINK, socket.AF_BRIDGE, 5)
    length, kind = core.NLATTR.unpack_from(body, nl.IFINFOMSG.size)
    assert kind == nl.IFLA_PROTINFO | core.NLA_F_NESTED  # without the flag the kernel reads a bare STP state
    flags = core.parse_attrs(body[nl.IFINFOMSG.size + 4:nl.IFINFOMSG.size + length])
    assert flags == {nl.IFLA_BRPORT_MODE: b"\x01", nl.IFLA_BRPORT_ISOLATED: b"\x00"}


# ---------------------------------------------------------------------- against the kernel
def _ip_json(ns: str, *args: str) -> list[dict]:
    return json.loads(run("ip", "-j", "-d", *args, netns=ns).stdout or "[]")


def test_errors_are_oserrors_with_errno_and_batches_keep_going(box: Sandbox):
    ns = box.netns("mcnle")
    with enter(netns_path(ns)), Rtnl() as ipr:
        bad = nl.addr(nl.RTM_NEWADDR, 999_999, ipaddress.ip_interface("10.0.0.1/24"))
        good = nl.newlink(nl.LinkSpec(name="d0", kind="bridge"), create=True)
        first, second = ipr.batch([bad, good], ["add address", "create d0"])
        assert isinstance(first, NetlinkError) and isinstance(first, OSError)
        assert first.errno == first.code == errno.ENODEV and is_errno(first, errno.ENODEV)
        assert "add address" in str(first)
        assert second == []  # the kernel went on with the next request
        with pytest.raises(NetlinkError) as exc:
            ipr.request(good)
        assert is_errno(exc.value, errno.EEXIST)
        assert [link.name for link in links.list_links(ipr)] == ["lo", "d0"]


def test_the_socket_forwards_nothing_to_pyroute2():
    with Rtnl() as ipr:
        assert not hasattr(ipr, "link") and not hasattr(ipr, "vlan_filter")
