"""The kernel helpers built on metacni.netlink (links, addresses, routes) and pyroute2 called
explicitly (kernel.iproute: bridge VLAN filtering), checked against the kernel with ``ip``
and ``bridge``."""

from __future__ import annotations

import errno
import ipaddress
import json

import pytest

from metacni.kernel import addresses, links, routes
from metacni.kernel.iproute import iproute
from metacni.kernel.netns import enter
from metacni.netlink.rtnl import NetlinkError, Rtnl, rtnl
from metacni_testkit.netns import Sandbox, netns_path, run


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


def test_access_vlan_through_pyroute2(box: Sandbox):
    ns = box.netns("mcvl")
    run("ip", "link", "add", "br0", "type", "bridge", netns=ns)
    run("ip", "link", "add", "p0", "type", "veth", "peer", "name", "p1", netns=ns)
    run("ip", "link", "set", "p0", "master", "br0", netns=ns)
    with enter(netns_path(ns)), rtnl() as ipr:
        br, port = links.get_link(ipr, "br0"), links.get_link(ipr, "p0")
        assert br is not None and port is not None
        try:
            links.set_vlan_filtering(ipr, br.index)
        except NetlinkError as exc:  # pyroute2's error, as ours
            assert exc.errno == errno.EOPNOTSUPP
            pytest.skip("kernel without bridge VLAN filtering")
        links.set_access_vlan(ipr, port.index, 42)
    assert _ip_json(ns, "link", "show", "br0")[0]["linkinfo"]["info_data"]["vlan_filtering"] == 1
    vlans = json.loads(run("bridge", "-j", "vlan", "show", "dev", "p0", netns=ns).stdout)
    (entry,) = vlans
    assert [(v["vlan"], sorted(v.get("flags", []))) for v in entry["vlans"]] == [(42, ["Egress Untagged", "PVID"])]
