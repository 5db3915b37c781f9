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

from metacni.spec.errors import CNIError
from metacni_testkit.daemon import run_shim, start_daemon
from metacni_testkit.nodes import CNI_PATH, Node, Pod
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


@pytest.fixture
def node(make_node: Callable[..., DaemonMetaNode]) -> DaemonMetaNode:
    mn = make_node(DaemonMetaNode, prefix="mcdmeta")
    mn.start_api()
    mn.write_primary()
    mn.daemon = start_daemon(mn.root / "daemon", netns=mn.name, args=[
        "--kubeconfig", str(mn.kubeconfig), "--node-name", "node-1", "--conf-dir", str(mn.conf_dir),
        "--cache-dir", str(mn.cni_dir), "--cni-path", CNI_PATH, "--no-routes", "--gc-period", "0",
        "--no-regenerate-config"])
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
    status = node.api.get_pod(pod.namespace, pod.name)["metadata"]["annotations"]
    assert "eth0" in status["k8s.v1.cni.cncf.io/network-status"]
    node.cni("DEL", pod, conf=conf)
    node.assert_clean(pod)
