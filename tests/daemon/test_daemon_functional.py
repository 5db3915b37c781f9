"""The same functional suite in standalone mode and in daemon mode (issue #6 acceptance)."""

from __future__ import annotations

import pytest

from metacni.sim.traffic import ping
from metacni.spec.errors import CNIError
from metacni_testkit.netns import link_names, netns_path
from metacni_testkit.nodes import MODES, Node, load, rt, run_in_node


@pytest.fixture(params=MODES)
def node(request: pytest.FixtureRequest, node: Node) -> Node:
    node.mode = request.param
    if node.mode == "daemon":
        node.start_daemon()
    return node


def test_pods_talk_check_and_delete(node: Node, box):
    raw = node.conflist()
    net = load(raw)
    runner = node.runner()
    pods = [netns_path(box.netns("mcpod")) for _ in range(2)]
    results = [run_in_node(node, lambda p=p, i=i: runner.add(net, rt(f"c{i}", p))) for i, p in enumerate(pods)]
    ips = [r.ips[0].address.split("/")[0] for r in results]
    assert len(set(ips)) == 2 and all(ip.startswith("10.78.0.") for ip in ips)
    assert ping(pods[0], ips[1]) and ping(pods[1], ips[0]) and ping(pods[0], "10.78.0.1")
    run_in_node(node, lambda: runner.check(net, rt("c0", pods[0])))
    assert len(node.leases(net.name)) == 2
    for i, p in enumerate(pods):
        run_in_node(node, lambda p=p, i=i: runner.delete(net, rt(f"c{i}", p)))
        run_in_node(node, lambda p=p, i=i: runner.delete(net, rt(f"c{i}", p)))  # DEL is idempotent
        assert "eth0" not in link_names(p.rsplit("/", 1)[1])
    assert node.leases(net.name) == []
    assert not [n for n in link_names(node.name) if n.startswith("veth")]


def test_plugin_errors_come_back_as_one_cni_error(node: Node, box):
    raw = node.conflist(subnet="10.78.0.0/33")
    pod = netns_path(box.netns("mcpod"))
    with pytest.raises(CNIError) as err:
        run_in_node(node, lambda: node.runner().add(load(raw), rt("bad", pod)))
    assert err.value.code in (7, 999) or err.value.code < 100
    assert "10.78.0.0/33" in str(err.value)
    assert "eth0" not in link_names(pod.rsplit("/", 1)[1])


def test_portmap_chain_add_del(node: Node, box):
    raw = node.conflist(portmap=True, subnet="10.79.0.0/24")
    net = load(raw)
    runner = node.runner()
    pod = netns_path(box.netns("mcpod"))
    caps = {"portMappings": [{"hostPort": 18080, "containerPort": 80, "protocol": "tcp"}]}
    res = run_in_node(node, lambda: runner.add(net, rt("pm", pod, capability_args=caps)))
    assert res.ips[0].address.startswith("10.79.0.")
    run_in_node(node, lambda: runner.delete(net, rt("pm", pod)))
    assert node.leases(net.name) == []


def test_gc_releases_everything_not_valid(node: Node, box):
    raw = node.conflist(subnet="10.80.0.0/24")
    net = load(raw)
    runner = node.runner()
    pods = {f"g{i}": netns_path(box.netns("mcpod")) for i in range(3)}
    for cid, p in pods.items():
        run_in_node(node, lambda cid=cid, p=p: runner.add(net, rt(cid, p)))
    assert len(node.leases(net.name)) == 3
    run_in_node(node, lambda: runner.gc(net, [("g0", "eth0")]))
    assert [e.container_id for e in runner.cache.entries(net.name)] == ["g0"]
    assert len(node.leases(net.name)) == 1
    assert ping(pods["g0"], "10.80.0.1")
