"""host-gw reachability between nodes, with real daemons on real namespaces.

Topology, all test-created: an underlay netns holding a bridge (and the fake API on it), and
three node netns each wired to it by a veth. Each node runs ``metacni daemon`` and a pod on
its own bridge subnet. Once the Nodes exist in the API, pods on different nodes talk without
NAT; deleting a Node removes its route everywhere; routes owned by others stay.
"""

from __future__ import annotations

import ipaddress
import json
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from metacni.daemon.routes import desired_routes
from metacni.engine.invoke import Invoker
from metacni.engine.registry import Registry
from metacni.engine.request import Invocation
from metacni.kernel.netns import enter
from metacni.sim.fakeapi import FakeAPIServer
from metacni.sim.traffic import tcp_peer
from metacni_testkit.daemon import DaemonProc, start_daemon
from metacni_testkit.netns import Sandbox, netns_path, run
from metacni_testkit.wait import wait_for

PROTO = 201


@dataclass
class World:
    underlay: str
    nodes: list[str]
    pods: list[str]
    pod_ips: list[str]
    api: FakeAPIServer
    daemons: list[DaemonProc]


def _routes(ns: str) -> list[dict[str, Any]]:
    return json.loads(run("ip", "-j", "route", "show", "table", "main", netns=ns).stdout or "[]")


def _owned(ns: str) -> dict[str, str]:
    return {r["dst"]: r.get("gateway", "") for r in _routes(ns) if str(r.get("protocol")) in (str(PROTO),)}


@pytest.fixture
def world(box: Sandbox) -> Iterator[World]:
    ul = box.netns("mcul")
    run("ip", "link", "add", "br0", "type", "bridge", netns=ul)
    run("ip", "addr", "add", "192.168.50.1/24", "dev", "br0", netns=ul)
    run("ip", "link", "set", "br0", "up", netns=ul)
    with enter(netns_path(ul)):
        api = FakeAPIServer(host="192.168.50.1").start()
    daemons: list[DaemonProc] = []
    with tempfile.TemporaryDirectory(prefix="mcroutes-") as tmp:
        root = Path(tmp)
        kubeconfig = api.write_kubeconfig(root / "kubeconfig")
        nodes, pods, pod_ips = [], [], []
        try:
            for i in (1, 2, 3):
                node = box.netns("mcnode")
                run("ip", "link", "add", "ul0", "netns", node, "type", "veth", "peer", "name", f"p{i}",
                    "netns", ul)
                run("ip", "link", "set", f"p{i}", "master", "br0", "up", netns=ul)
                run("ip", "addr", "add", f"192.168.50.{10 + i}/24", "dev", "ul0", netns=node)
                run("ip", "link", "set", "ul0", "up", netns=node)
                pod = box.netns("mcpod")
                conf = {"cniVersion": "1.0.0", "name": "podnet", "type": "bridge", "bridge": "cni0",
                        "isDefaultGateway": True,
                        "ipam": {"type": "host-local", "dataDir": str(root / f"ipam{i}"),
                                 "ranges": [[{"subnet": f"10.90.{i}.0/24"}]]}}
                inv = Invocation(command="ADD", container_id=f"pod{i}", netns=netns_path(pod), ifname="eth0",
                                 cni_path=("/usr/lib/cni",))
                with enter(netns_path(node)):
                    result = Invoker(Registry()).invoke("bridge", conf, inv)
                assert result is not None
                nodes.append(node)
                pods.append(pod)
                pod_ips.append(str(ipaddress.ip_interface(result.ips[0].address).ip))
                daemons.append(start_daemon(root / f"d{i}", netns=node, args=[
                    "--kubeconfig", str(kubeconfig), "--node-name", f"node-{i}", "--no-regenerate-config",
                    "--cache-dir", str(root / f"cache{i}"), "--gc-period", "0", "--reconcile-period", "30"]))
            yield World(ul, nodes, pods, pod_ips, api, daemons)
        finally:
            for d in daemons:
                d.kill()
            api.stop()


def _peer_seen(server_ns: str, server_ip: str, client_ns: str, port: int = 7301) -> str:
    """TCP from client to server pod; the address the server saw as the client."""
    return tcp_peer(netns_path(server_ns), server_ip, netns_path(client_ns), port, timeout=10)


def test_pods_on_different_nodes_reach_each_other_without_nat(world: World):
    n1 = world.nodes[0]
    # A route someone else owns, in the same table: it must survive every reconciliation.
    run("ip", "route", "add", "10.99.0.0/24", "via", "192.168.50.12", "proto", "static", netns=n1)
    for i in (1, 2, 3):
        world.api.add_node(f"node-{i}", f"10.90.{i}.0/24", f"192.168.50.{10 + i}")
    for i, node in enumerate(world.nodes, start=1):
        want = {f"10.90.{j}.0/24": f"192.168.50.{10 + j}" for j in (1, 2, 3) if j != i}
        assert wait_for(lambda node=node, want=want: _owned(node) == want), \
            (_routes(node), world.daemons[i - 1].log_text())
    # Pod 1 → pod 2 and pod 3 → pod 1: the receiver sees the sender's pod address.
    assert _peer_seen(world.pods[1], world.pod_ips[1], world.pods[0]) == world.pod_ips[0]
    assert _peer_seen(world.pods[0], world.pod_ips[0], world.pods[2]) == world.pod_ips[2]

    world.api.delete_node("node-3")
    for node in world.nodes[:2]:
        assert wait_for(lambda node=node: "10.90.3.0/24" not in _owned(node))
    assert _owned(n1) == {"10.90.2.0/24": "192.168.50.12"}
    foreign = [r for r in _routes(n1) if r["dst"] == "10.99.0.0/24"]
    assert foreign and foreign[0]["gateway"] == "192.168.50.12" and foreign[0].get("protocol") == "static"
    assert run("sysctl", "-n", "net.ipv4.ip_forward", netns=n1).stdout.strip() == "1"


def test_a_foreign_route_to_a_pod_cidr_is_not_replaced(world: World):
    n1 = world.nodes[0]
    run("ip", "route", "add", "10.90.2.0/24", "via", "192.168.50.13", "proto", "static", netns=n1)
    for i in (1, 2, 3):
        world.api.add_node(f"node-{i}", f"10.90.{i}.0/24", f"192.168.50.{10 + i}")
    assert wait_for(lambda: _owned(n1) == {"10.90.3.0/24": "192.168.50.13"})
    [r] = [r for r in _routes(n1) if r["dst"] == "10.90.2.0/24"]
    assert r["gateway"] == "192.168.50.13" and r.get("protocol") == "static"


def test_desired_routes_skips_self_and_nodes_without_address():
    nodes = [
        {"metadata": {"name": "me"}, "spec": {"podCIDR": "10.0.1.0/24"},
         "status": {"addresses": [{"type": "InternalIP", "address": "192.0.2.1"}]}},
        {"metadata": {"name": "dual"}, "spec": {"podCIDRs": ["10.0.2.0/24", "fd00:2::/64"]},
         "status": {"addresses": [{"type": "InternalIP", "address": "192.0.2.2"},
                                  {"type": "InternalIP", "address": "2001:db8::2"}]}},
        {"metadata": {"name": "noaddr"}, "spec": {"podCIDR": "10.0.3.0/24"}, "status": {"addresses": []}},
        {"metadata": {"name": "v4only"}, "spec": {"podCIDRs": ["10.0.4.0/24", "fd00:4::/64"]},
         "status": {"addresses": [{"type": "InternalIP", "address": "192.0.2.4"}]}},
    ]
    got = {str(k): str(v) for k, v in desired_routes(nodes, "me").items()}
    assert got == {"10.0.2.0/24": "192.0.2.2", "fd00:2::/64": "2001:db8::2", "10.0.4.0/24": "192.0.2.4"}


def test_batched_reconcile_in_process(box: Sandbox):
    """The batched netlink path on its own: 300 routes in, an unreachable next hop reported and
    skipped, churn applied, and a pass over an empty node list removes only our routes."""
    from metacni.daemon.routes import reconcile
    from metacni.daemon.rtbatch import RouteSocket

    ns = box.netns("mcrt")
    run("ip", "link", "add", "ul0", "type", "veth", "peer", "name", "ul1", netns=ns)
    run("ip", "link", "set", "ul1", "up", netns=ns)
    run("ip", "addr", "add", "100.64.255.254/16", "dev", "ul0", netns=ns)
    run("ip", "link", "set", "ul0", "up", netns=ns)
    run("ip", "route", "add", "10.250.0.0/24", "via", "100.64.0.9", netns=ns)  # foreign, kernel proto "boot"
    nodes = [{"metadata": {"name": f"n{i}"}, "spec": {"podCIDR": f"10.{i // 256}.{i % 256}.0/24"},
              "status": {"addresses": [{"type": "InternalIP", "address": f"100.64.{i // 250}.{1 + i % 250}"}]}}
             for i in range(300)]
    nodes.append({"metadata": {"name": "far"}, "spec": {"podCIDR": "10.251.0.0/24"},
                  "status": {"addresses": [{"type": "InternalIP", "address": "203.0.113.7"}]}})

    def owned() -> dict[str, str]:
        return _owned(ns)

    with enter(netns_path(ns)), RouteSocket() as rs:
        first = reconcile(rs, desired_routes(nodes, "n0"), PROTO)
        assert (first.added, first.skipped, first.owned) == (299, 1, 299)
        assert len(owned()) == 299 and owned()["10.0.5.0/24"] == "100.64.0.6"
        again = reconcile(rs, desired_routes(nodes, "n0"), PROTO)
        assert (again.added, again.replaced, again.deleted) == (0, 0, 0)
        nodes[5]["status"]["addresses"][0]["address"] = "100.64.9.9"
        del nodes[6]
        churn = reconcile(rs, desired_routes(nodes, "n0"), PROTO)
        assert (churn.replaced, churn.deleted) == (1, 1)
        assert owned()["10.0.5.0/24"] == "100.64.9.9" and "10.0.6.0/24" not in owned()
        gone = reconcile(rs, {}, PROTO)
        assert gone.deleted == 298 and owned() == {}
    assert [r for r in _routes(ns) if r["dst"] == "10.250.0.0/24"]
