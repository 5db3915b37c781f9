"""Delegate records cached before the trust rules (issue #14 follow-up 1).

A record written by an older metacni may hold a delegate of type ``metacni`` (a NAD that is
refused today). DEL and GC skip such a delegate with an error in the log, never run it, and
still free every other network of the pod: the record must never make DEL fail forever.
"""

from __future__ import annotations

import base64
import json
import logging
import os
from collections.abc import Iterator

import pytest

from metacni_testkit.nodes import NETWORKS, Pod
from metacni_testkit.nodes import Node as MetaNode
from tests.meta.tenant_support import Tenant, nad_conf, tenant_dir


@pytest.fixture
def tenant() -> Iterator[Tenant]:
    with tenant_dir() as t:
        yield t


def plant_old_meta_delegate(node: MetaNode, tenant: Tenant, pod: Pod, *, in_plugins: bool = False) -> None:
    """Rewrite the pod's delegate record as an older metacni would have left it: an extra
    delegate whose config is of type metacni with the tenant's node settings."""
    meta = {"type": "metacni", "binDir": str(tenant.bin_dir), "confDir": str(tenant.conf_dir),
            "clusterNetwork": str(tenant.conf_dir / "00-evil.conflist"),
            "delegates": [{"cniVersion": "1.0.0", "name": "x", "type": "x"}]}
    conf = ({"cniVersion": "1.0.0", "name": "evil", "plugins": [meta]} if in_plugins
            else {"cniVersion": "1.0.0", "name": "evil", **meta})
    path = node.cni_dir / pod.container_id
    record = json.loads(path.read_text())
    record["delegates"].insert(1, {
        "label": "default/evil", "ifname": "net9", "primary": False, "source": "",
        "config": base64.b64encode(json.dumps(conf).encode()).decode(), "capabilityArgs": {}})
    path.write_text(json.dumps(record))


def added_pod(node: MetaNode, version: str = "1.0.0") -> Pod:
    node.api.add_nad("default", "net-t", nad_conf(node, "net-t", cniVersion=version))  # type: ignore[union-attr]
    pod = node.pod(annotations={NETWORKS: "net-t"})
    node.cni("ADD", pod)
    assert node.pod_links(pod) == {"lo", "eth0", "net1"}
    return pod


@pytest.mark.parametrize("shape", ["conf", "conflist"])
def test_del_skips_an_old_records_metacni_delegate_and_frees_the_rest(node: MetaNode, tenant: Tenant, shape: str,
                                                                       caplog: pytest.LogCaptureFixture):
    pod = added_pod(node)
    plant_old_meta_delegate(node, tenant, pod, in_plugins=shape == "conflist")
    with caplog.at_level(logging.ERROR):
        node.cni("DEL", pod)  # succeeds: no code 7 forever
    assert tenant.ran() == []
    node.assert_clean(pod)
    assert not (node.cni_dir / pod.container_id).exists()
    logged = " ".join(r.getMessage() for r in caplog.records)
    assert "default/evil" in logged and "metacni" in logged and "skipped" in logged
    node.cni("DEL", pod)  # and again: idempotent
    node.assert_clean(pod)


def test_gc_skips_an_old_records_metacni_delegate_and_frees_the_rest(node: MetaNode, tenant: Tenant):
    node.write_primary(version="1.1.0", extra={"apiTimeout": 5, "apiConnectTimeout": 2, "apiRetries": 0})
    pod = added_pod(node, "1.1.0")
    plant_old_meta_delegate(node, tenant, pod)
    attachments: list[dict[str, str]] = []
    conf = dict(node.meta_conf(), **{"cni.dev/valid-attachments": attachments, "cni.dev/attachments": attachments})
    env = {k: v for k, v in os.environ.items() if k not in ("CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME", "CNI_ARGS")}
    env.update(CNI_COMMAND="GC", CNI_PATH=str(node.bin_dir))
    status, out = node.exec_metacni(conf, env)
    assert status == 0, out
    assert tenant.ran() == []
    node.assert_clean(pod)
    assert not (node.cni_dir / pod.container_id).exists()
