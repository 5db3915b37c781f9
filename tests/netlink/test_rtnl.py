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

from metacni.kernel import addresses, links, routes
from metacni.kernel.iproute import iproute
from metacni.kernel.netns import enter
from metacni.netlink import core
from metacni.netlink import rtnl as nl
from metacni.netlink.rtnl import NetlinkError, Rtnl, is_errno, rtnl
from metacni.testing.netns import Sandbox, netns_path, run

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


def test_links_addresses_routes_in_namespaces(box: Sandbox):
    node, pod = box.netns("mcnlc"), box.netns("mcnlp")
    with enter(netns_path(node)), rtnl() as ipr:
        br, created = links.ensure_bridge(ipr, "br0", mtu=1450, mac="02:00:00:00:00:01")
        assert created and br.kind == "bridge" and br.admin_up
        assert links.ensure_bridge(ipr, "br0")[1] is False
        host = links.create_veth_in_netns(ipr, "vh0", "eth0", netns_path(pod), master=br.index, mtu=1400,
                                          host_mac="02:00:00:00:00:02", peer_mac="02:00:00:00:00:03",
                                          hairpin=True)
        assert (host.kind, host.master, host.mtu, host.mac) == ("veth", br.index, 1400, "02:00:00:00:00:02")
        with pytest.raises(links.LinkExistsError):
            links.create_veth_in_netns(ipr, "vh0", "eth1", netns_path(pod))
        assert addresses.add_address(ipr, br.index, ipaddress.ip_interface("10.9.0.1/24"))
        assert not addresses.add_address(ipr, br.index, ipaddress.ip_interface("10.9.0.1/24"))
        assert addresses.list_addresses(ipr, br.index, 4) == [ipaddress.ip_interface("10.9.0.1/24")]
        with enter(netns_path(pod)), rtnl() as inside:
            eth0 = links.get_link(inside, "eth0")
            assert eth0 is not None and eth0.index == host.peer_index and eth0.mac == "02:00:00:00:00:03"
            links.set_up(inside, eth0.index)
            addresses.add_address(inside, eth0.index, ipaddress.ip_interface("10.9.0.5/24"))
            addresses.add_address(inside, eth0.index, ipaddress.ip_interface("fd09::5/64"))
            spec = routes.RouteSpec(dst=ipaddress.ip_network("0.0.0.0/0"), gw=ipaddress.ip_address("10.9.0.1"),
                                    mtu=1300)
            assert routes.add_route(inside, eth0.index, spec) and not routes.add_route(inside, eth0.index, spec)
            have = routes.list_routes(inside, eth0.index)
            assert routes.InstalledRoute(ipaddress.ip_network("0.0.0.0/0"), ipaddress.ip_address("10.9.0.1"),
                                         254) in have
        links.wait_oper_up(ipr, host.index)
    (vh0,) = _ip_json(node, "link", "show", "vh0")
    assert vh0["master"] == "br0" and vh0["linkinfo"]["info_slave_data"]["hairpin"] is True
    (default,) = _ip_json(pod, "route", "show", "default")
    assert default["gateway"] == "10.9.0.1" and default["metrics"] == [{"mtu": 1300}]
    with enter(netns_path(node)), rtnl() as ipr:
        assert links.delete_link(ipr, "vh0") and not links.delete_link(ipr, "vh0")
        assert links.get_link(ipr, "vh0") is None


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


def test_iproute_runs_pyroute2_in_the_sockets_netns(box: Sandbox):
    """The plugin-author API (docs/plugins.md) opens pyroute2 beside one of our sockets: it must
    act on the netns the socket was opened in, whichever netns the thread is in now, and its
    failures are our NetlinkError."""
    ns = box.netns("mcnlq")
    run("ip", "link", "add", "d1", "type", "bridge", netns=ns)
    with enter(netns_path(ns)):
        ipr = Rtnl()
    try:
        with iproute(ipr) as ip:
            (idx,) = ip.link_lookup(ifname="d1")
            ip.link("set", index=idx, ifalias="hello")
        with pytest.raises(NetlinkError) as exc, iproute(ipr) as ip:
            ip.link("set", index=999_999, mtu=1000)
        assert exc.value.errno == errno.ENODEV
    finally:
        ipr.close()
    assert _ip_json(ns, "link", "show", "d1")[0]["ifalias"] == "hello"


def test_the_socket_forwards_nothing_to_pyroute2():
    with Rtnl() as ipr:
        assert not hasattr(ipr, "link") and not hasattr(ipr, "vlan_filter")
