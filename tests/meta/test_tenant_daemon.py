"""Daemon mode: node-only keys in the stdin config are the node's, whatever the caller sent
(metacni/daemon/node_policy.py, docs/design/1404-daemon-node-config.md)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.daemon.test_daemon_meta import DaemonMetaNode
from tests.daemon.test_daemon_meta import node as daemon_node  # noqa: F401 - the daemon fixture
from tests.meta.tenant_support import Tenant, node_snapshot, tenant_dir

PRIMARY = "primary-net"


@pytest.fixture
def tenant() -> Iterator[Tenant]:
    with tenant_dir() as t:
        yield t


def test_daemon_takes_node_settings_from_its_node_config(daemon_node: DaemonMetaNode,  # noqa: F811
                                                         tenant: Tenant):
    node = daemon_node
    conf = node.meta_conf()
    conf.update({"binDir": str(tenant.bin_dir), "cniDir": str(tenant.root / "cni"),
                 "confDir": str(tenant.conf_dir), "clusterNetwork": str(tenant.conf_dir / "00-evil.conflist"),
                 "logFile": str(node.conf_dir / "00-aaa.conf"), "readinessindicatorfile": str(tenant.root / "never"),
                 "delegates": [{"cniVersion": "1.0.0", "name": "x", "type": "x"}]})
    pod = node.pod()
    before = node_snapshot(node, tenant)
    result = node.cni("ADD", pod, conf=conf)
    assert result is not None and [i["name"] for i in result["interfaces"] if i.get("sandbox")] == ["eth0"]
    assert node.network_status(pod)[0]["name"] == PRIMARY  # the node's clusterNetwork, not "evil"
    assert node.result_cache_files()  # the node's cniDir
    node.cni("DEL", pod, conf=conf)
    assert tenant.ran() == []
    assert node_snapshot(node, tenant) == before
    assert not (node.conf_dir / "00-aaa.conf").exists()
    node.assert_clean(pod)
    assert node.daemon is not None
    assert "differs from the node's config" in node.daemon.log.read_text()


def test_daemon_bounds_nad_host_devices_by_its_node_config(daemon_node: DaemonMetaNode):  # noqa: F811
    """hostDevices is a node setting: a stdin widening it is overridden by the daemon's node
    config (the link stays on the node); the node's own setting lets the NAD take the link."""
    from metacni_testkit.netns import link_names
    from metacni_testkit.nodes import NETWORKS
    from tests.meta.test_tenant_hostifs import API, nad, refused, uplink

    node = daemon_node
    uplink(node, "eth1")
    nad(node, "hd", {"type": "host-device", "device": "eth1"})
    tampered = {**node.meta_conf(), "hostDevices": ["*"], "hostInterfaces": ["*"]}
    pod = node.pod("p1", annotations={NETWORKS: "hd"})
    refused(node, pod, "default/hd", "device", "'eth1'", "hostDevices", conf=tampered)
    assert "eth1" in link_names(node.name)
    node.write_primary(extra={**API, "hostDevices": ["eth1"]})
    ok = node.pod("p2", annotations={NETWORKS: "hd"})
    node.cni("ADD", ok)
    assert "eth1" not in link_names(node.name) and "net1" in node.pod_links(ok)
    node.cni("DEL", ok)
    assert "eth1" in link_names(node.name)
    node.assert_clean(ok)


def test_daemon_checks_node_addresses_in_the_nodes_namespace(daemon_node: DaemonMetaNode):  # noqa: F811
    """The kernel reads behind the address checks run in the daemon's (the node's) namespace,
    whatever namespace its workers entered before."""
    import json

    from metacni_testkit.netns import run
    from metacni_testkit.nodes import NETWORKS
    from tests.meta.test_tenant_hostifs import nad, refused, uplink

    node = daemon_node
    uplink(node, "eth0")
    run("ip", "addr", "add", "192.168.80.11/24", "dev", "eth0", netns=node.name)
    nad(node, "lan", {"type": "macvlan", "master": "eth0", "capabilities": {"ips": True}, "ipam": {"type": "static"}})
    warm = node.pod("warm")
    node.cni("ADD", warm)  # a worker has been in a pod's namespace
    ask = [{"name": "lan", "ips": ["192.168.80.11/24"]}]
    refused(node, node.pod("a", annotations={NETWORKS: json.dumps(ask)}), "ips entry", "address of this node")
    ok = node.pod("b", annotations={NETWORKS: json.dumps([{"name": "lan", "ips": ["192.168.80.50/24"]}])})
    node.cni("ADD", ok)
    for done in (ok, warm):
        node.cni("DEL", done)
    for done in (ok, warm):
        node.assert_clean(done)
