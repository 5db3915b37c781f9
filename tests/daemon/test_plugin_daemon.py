"""The example third-party plugin (docs/examples/metacni-tuning, type ``tuning-py``) chained
after bridge, with every plugin exec'd as the runtime would: through the shim, served
in-process by the warm daemon (daemon mode, the static shim) or by ``metacni`` itself (standalone mode).

The result families are checked at the runtime's side: the 0.4.0 list's result carries no
``mtu`` (that family cannot), the 1.0.0 one does, and the kernel has the values either way.
"""

from __future__ import annotations

import json

import pytest

from metacni_testkit.netns import link_names, links, netns_path, tag
from metacni_testkit.nodes import MODES, PLUGIN_TYPES, Node, load, rt, run_in_node

pytest.importorskip("metacni_tuning.plugin", reason="pip install -e docs/examples/metacni-tuning")


@pytest.fixture(params=MODES)
def node(request: pytest.FixtureRequest, node: Node) -> Node:
    node.mode = request.param
    node.install(*PLUGIN_TYPES, "tuning-py")
    if node.mode == "daemon":
        node.start_daemon()
    return node


def conflist(node: Node, version: str) -> bytes:
    raw = json.loads(node.conflist(name=tag("tdn"), subnet="10.81.0.0/24", version=version))
    raw["plugins"].append({"type": "tuning-py", "mtu": 1360, "mac": "02:42:ac:11:00:21",
                           "sysctl": {"net.ipv4.conf.IFNAME.arp_notify": "1"}, "daemonSocket": node.socket,
                           "dataDir": str(node.root / "tuning")})
    return json.dumps(raw).encode()


@pytest.mark.parametrize("version", ["0.4.0", "1.0.0"])
def test_tuning_after_bridge_through_the_shim(node: Node, box, version):
    net = load(conflist(node, version))
    runner = node.runner()
    pod = box.netns("mctd-pod")
    result = run_in_node(node, lambda: runner.add(net, rt("c1", netns_path(pod))))
    wire = result.to_wire()
    assert wire["cniVersion"] == version
    iface = next(i for i in wire["interfaces"] if i.get("sandbox") == netns_path(pod))
    assert iface["mac"] == "02:42:ac:11:00:21"
    assert iface.get("mtu") == (1360 if version == "1.0.0" else None)
    (eth0,) = [ln for ln in links(pod) if ln["ifname"] == "eth0"]
    assert (eth0["address"], eth0["mtu"]) == ("02:42:ac:11:00:21", 1360)
    run_in_node(node, lambda: runner.check(net, rt("c1", netns_path(pod))))
    if node.daemon is not None:  # served by the daemon
        served = [r for r in node.daemon.log_records()
                  if r.get("verb") == "ADD" and r.get("network") == net.name and r.get("result") == "ok"]
        assert len(served) == 2, node.daemon.log_text()  # bridge, then tuning-py
    run_in_node(node, lambda: runner.delete(net, rt("c1", netns_path(pod))))
    assert "eth0" not in link_names(pod)
    assert not list((node.root / "tuning").rglob("*.json"))
