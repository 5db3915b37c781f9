"""The meta plugin's functional suite again, in daemon mode: every call goes runtime → shim
process → daemon (warm, watch caches fed by the fake API) → meta plugin in the daemon.

The test functions are imported from tests/meta so the two modes can never drift apart; only
the ``node`` fixture differs. Plus what only daemon mode promises: no API read per ADD.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from metacni.meta.kube import NETWORK_STATUS
from metacni.spec.errors import CNIError
from metacni_testkit.daemon import run_shim, start_daemon
from metacni_testkit.nodes import CNI_PATH, PRIMARY, Node, Pod
from metacni_testkit.wait import wait_for
from tests.meta import test_meta_add as suite


class DaemonMetaNode(Node):
    """The meta plugin called through the shim process and the node's daemon."""

    def cni(self, verb: str, pod: Pod, *, runtime_config: dict[str, Any] | None = None,
            conf: dict[str, Any] | None = None) -> dict[str, Any] | None:
        config = dict(conf or self.meta_conf())
        if runtime_config:
            config["runtimeConfig"] = runtime_config
        assert self.daemon is not None
        env = {"CNI_COMMAND": verb, "CNI_CONTAINERID": pod.container_id, "CNI_NETNS": pod.path,
               "CNI_IFNAME": "eth0", "CNI_ARGS": pod.cni_args, "CNI_PATH": CNI_PATH,
               "METACNI_SOCKET": self.daemon.socket}
        out = run_shim(env, json.dumps(config).encode())
        text = out.stdout.decode().strip()
        reply = json.loads(text) if text else None
        if out.returncode != 0:
            assert reply is not None, out.stderr
            raise CNIError.from_dict(reply)
        return reply


def run_daemon(mn: DaemonMetaNode) -> None:
    mn.daemon = start_daemon(mn.root / "daemon", netns=mn.name, args=[
        "--kubeconfig", str(mn.kubeconfig), "--node-name", "node-1", "--conf-dir", str(mn.conf_dir),
        "--cache-dir", str(mn.cni_dir), "--cni-path", CNI_PATH, "--no-routes", "--gc-period", "0",
        "--no-regenerate-config"])


@pytest.fixture
def node(make_node: Callable[..., DaemonMetaNode]) -> DaemonMetaNode:
    mn = make_node(DaemonMetaNode, prefix="mcdmeta")
    mn.start_api()
    mn.write_primary()
    run_daemon(mn)
    return mn


for _name in dir(suite):
    if _name.startswith("test_"):
        globals()[_name] = getattr(suite, _name)


def test_daemon_add_makes_no_api_read(node: DaemonMetaNode):
    """The pod and its NADs come from the watch caches; the status patch is the only request."""
    node.two_nads()
    pod = node.pod(annotations={"k8s.v1.cni.cncf.io/networks": "net-a, default/net-b"})
    node.api.reset_counts()
    node.cni("ADD", pod)
    assert node.pod_links(pod) == {"lo", "eth0", "net1", "net2"}
    assert node.api.count(("get", "list")) == 0, node.api.counts
    assert node.daemon.status_written()  # network-status goes out after the ADD answered
    assert node.api.count("patch", "pods/status") == 1, node.api.counts
    node.cni("DEL", pod)
    assert node.api.count(("get", "list")) == 0, node.api.counts
    node.assert_clean(pod)


def test_daemon_writes_with_its_own_credentials(node: DaemonMetaNode):
    """In a DaemonSet the config's ``kubeconfig`` is the host's path (for the standalone
    fallback) and does not exist in the daemon's container: the status patch must still go
    out, with the daemon's own credentials."""
    pod = node.pod()
    conf = node.meta_conf()
    conf["kubeconfig"] = "/host-only/etc/cni/net.d/metacni.d/metacni.kubeconfig"
    node.cni("ADD", pod, conf=conf)
    assert node.network_status(pod)[0]["interface"] == "eth0"
    node.cni("DEL", pod, conf=conf)
    node.assert_clean(pod)


# -- network-status is written after the ADD answers (docs/design/1506-network-status-after-the-answer.md)
NETWORKS = "k8s.v1.cni.cncf.io/networks"


def annotations_of(node: DaemonMetaNode, pod: Pod) -> dict[str, str]:
    stored = node.api.get_pod(pod.namespace, pod.name)
    assert stored is not None
    return dict(stored["metadata"].get("annotations") or {})


def test_a_failing_status_write_does_not_hold_the_add_and_is_retried(node: DaemonMetaNode):
    node.add_nad("net-a", "br-a", "10.89.1.0/24")
    pod = node.pod(annotations={NETWORKS: "net-a"})
    with node.api.fault(500, verb="patch", resource="pods/status") as refused:
        node.cni("ADD", pod)  # answered although the API refuses the write
        assert node.pod_links(pod) == {"lo", "eth0", "net1"}
        assert wait_for(lambda: refused.hits >= 2, 20)  # tried, and tried again
        assert not node.daemon.status_written(0.05)
        assert NETWORK_STATUS not in annotations_of(node, pod)
    assert node.daemon.status_written()  # the next retry lands
    assert [(s["name"], s["interface"]) for s in node.network_status(pod)] == [
        (PRIMARY, "eth0"), ("default/net-a", "net1")]
    assert "not written (attempt 1, retrying)" in node.daemon.log_text()
    node.cni("DEL", pod)
    node.assert_clean(pod)


def test_del_drops_a_status_not_written_yet(node: DaemonMetaNode):
    pod = node.pod()
    with node.api.fault(503, verb="patch", resource="pods/status") as refused:
        node.cni("ADD", pod)
        assert wait_for(lambda: refused.hits >= 1, 20)
        node.cni("DEL", pod)
        assert node.daemon.status_written(0.05)  # nothing left to write
        hits = refused.hits
    assert node.daemon.status_written()
    assert refused.hits == hits and NETWORK_STATUS not in annotations_of(node, pod)
    node.assert_clean(pod)


def test_the_status_of_a_recreated_pod_is_not_written(node: DaemonMetaNode):
    """Deleted and created again under the same name (a StatefulSet pod) while the write was
    failing: the write is for the old pod, so it is dropped, and its UID would make the API
    refuse it anyway."""
    pod = node.pod()
    old_uid = node.api.get_pod(pod.namespace, pod.name)["metadata"]["uid"]
    with node.api.fault(500, verb="patch", resource="pods/status") as refused:
        node.cni("ADD", pod)
        assert wait_for(lambda: refused.hits >= 1, 20)
        node.api.delete_pod(pod.namespace, pod.name)
        node.api.add_pod(pod.namespace, pod.name, node_name="node-1")
        assert node.daemon.status_written(20)  # dropped once the watch shows the new pod
    new_uid = node.api.get_pod(pod.namespace, pod.name)["metadata"]["uid"]
    assert new_uid != old_uid and NETWORK_STATUS not in annotations_of(node, pod)
    assert "was deleted or re-created" in node.daemon.log_text()
    node.cni("DEL", pod)
    node.assert_clean(pod)



def test_a_status_lost_with_the_daemon_is_written_by_the_next_one(node: DaemonMetaNode):
    """Killed before its write went out, the daemon loses the queued status; the next daemon
    finds it from the record: for a pod without network-status only (another writer's is kept)."""
    node.add_nad("net-a", "br-a", "10.89.1.0/24")
    pod, other = node.pod(annotations={NETWORKS: "net-a"}), node.pod(name="other")
    with node.api.fault(500, verb="patch", resource="pods/status") as refused:
        node.cni("ADD", pod)
        node.cni("ADD", other)
        assert wait_for(lambda: refused.hits >= 2, 20)
        assert node.daemon is not None
        node.daemon.kill()
    node.api.patch_pod(other.namespace, other.name, {"metadata": {"annotations": {NETWORK_STATUS: "[]"}}})
    assert NETWORK_STATUS not in annotations_of(node, pod)
    run_daemon(node)
    assert [(s["name"], s["interface"]) for s in node.network_status(pod)] == [
        (PRIMARY, "eth0"), ("default/net-a", "net1")]
    assert annotations_of(node, other)[NETWORK_STATUS] == "[]"
    assert "was never written; writing it" in node.daemon.log_text()
    node.cni("DEL", pod)
    node.cni("DEL", other)
    node.assert_clean(pod)
    node.assert_clean(other)
