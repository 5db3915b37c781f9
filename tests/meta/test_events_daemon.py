"""Events and device-plugin networks in daemon mode: runtime -> shim process -> daemon (which
installs the event recorder at start, with its own credentials) -> meta plugin."""

from __future__ import annotations

import json
import os
import shutil
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from metacni.spec.errors import CNIError
from metacni_testkit.daemon import run_shim
from metacni_testkit.nodes import CNI_PATH, Pod
from metacni_testkit.nodes import Node as MetaNode
from metacni_testkit.podresources import FakePodResources
from tests.daemon.test_daemon_meta import DaemonMetaNode
from tests.daemon.test_daemon_meta import node as node  # noqa: F401 - the daemon-mode fixture
from tests.meta.test_devices import RECORDER, RESOURCE
from tests.meta.test_events import _wait

NETWORKS = "k8s.v1.cni.cncf.io/networks"


def _events(node: MetaNode, reason: str) -> list[dict[str, Any]]:
    return [e for e in node.api.list_objects("events", "default") if e["reason"] == reason]


def test_daemon_records_added_interface_and_failure_events(node: DaemonMetaNode) -> None:
    node.two_nads()
    pod = node.pod(annotations={NETWORKS: "net-a"})
    node.cni("ADD", pod)
    added = _wait("AddedInterface events", lambda: len(_events(node, "AddedInterface")) == 2
                  and _events(node, "AddedInterface"))
    messages = sorted(e["message"] for e in added)
    assert messages[0].startswith("Add eth0 [10.88.0.") and messages[0].endswith("/24] from primary-net")
    assert messages[1].startswith("Add net1 [10.89.1.") and messages[1].endswith("/24] from default/net-a")
    node.cni("DEL", pod)

    bad = node.pod("bad", annotations={NETWORKS: "nowhere"})
    with pytest.raises(CNIError):
        node.cni("ADD", bad)
    [warning] = _wait("NoNetworkFound", lambda: _events(node, "NoNetworkFound"))
    assert warning["type"] == "Warning" and warning["involvedObject"]["name"] == "bad"
    assert "nowhere" in warning["message"]


def test_daemon_add_succeeds_when_events_fail(node: DaemonMetaNode) -> None:
    fault = node.api.inject_fault(500, verb="create", resource="events")
    pod = node.pod()
    result = node.cni("ADD", pod)
    assert result is not None and result["ips"]
    _wait("the failed event POST", lambda: fault.hits >= 1)
    assert node.api.list_objects("events", "default") == []
    node.cni("DEL", pod)
    node.assert_clean(pod)


@pytest.fixture
def kubelet() -> Iterator[tuple[FakePodResources, Path]]:
    root = Path(tempfile.mkdtemp(prefix="mcdevd-"))
    try:
        with FakePodResources(str(root / "kubelet.sock")) as server:
            yield server, root
    finally:
        shutil.rmtree(root, ignore_errors=True)


def test_daemon_device_plugin_network(node: DaemonMetaNode, kubelet: tuple[FakePodResources, Path]) -> None:
    server, root = kubelet
    bin_dir, records, info_dir = root / "bin", root / "records", root / "devinfo" / "cni"
    for d in (bin_dir, records, info_dir):
        d.mkdir(parents=True)
    script = bin_dir / "sriov-rec"
    script.write_text(RECORDER)
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    node.api.add_nad("default", "sriov-a", {"cniVersion": "1.0.0", "name": "sriov-a", "type": "sriov-rec",
                                            "recordDir": str(records), "address": "192.0.2.10/24"},
                     annotations={"k8s.v1.cni.cncf.io/resourceName": RESOURCE})
    pod = node.pod(annotations={NETWORKS: "sriov-a"})
    server.set_pod("default", "web", {RESOURCE: ["0000:3b:02.5"]})
    # node-only keys: the daemon takes them from the node's own 00-metacni.conf, never from stdin
    conf = node.meta_conf()
    conf.update(deviceInfoDir=str(info_dir), podResourcesSocket=server.socket_path)
    node.meta_conf_path.write_text(json.dumps(conf))

    def cni(verb: str, p: Pod) -> None:
        assert node.daemon is not None
        env = {"CNI_COMMAND": verb, "CNI_CONTAINERID": p.container_id, "CNI_NETNS": p.path, "CNI_IFNAME": "eth0",
               "CNI_ARGS": p.cni_args, "CNI_PATH": f"{CNI_PATH}:{bin_dir}", "METACNI_SOCKET": node.daemon.socket}
        out = run_shim(env, json.dumps(conf).encode())
        assert out.returncode == 0, out.stdout + out.stderr

    cni("ADD", pod)
    recorded = json.loads((records / f"ADD-{pod.container_id}-net1.json").read_text())
    assert recorded["deviceID"] == "0000:3b:02.5" and recorded["pciBusID"] == "0000:3b:02.5"
    status = node.network_status(pod)
    assert status[1]["device-info"]["pci"]["pci-address"] == "0000:3b:02.5"
    assert os.listdir(info_dir) == [f"default-sriov-a-{pod.container_id}_net1"]
    cni("DEL", pod)
    assert os.listdir(info_dir) == []
