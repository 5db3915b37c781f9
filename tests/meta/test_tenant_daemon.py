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
