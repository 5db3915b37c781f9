"""Multus' ``/delegate`` carries tenant input (the NAD's config, the selection's interface name,
passed on by the dynamic networks controller): the same rules as an ADD apply. A real daemon,
the controller's exact request bytes (tests/daemon/test_hotplug.py), real links."""

from __future__ import annotations

import json
from collections.abc import Callable

from metacni.meta import delegate_cache
from metacni.spec.errors import Code
from metacni_testkit.netns import link_names
from tests.daemon.test_daemon_meta import DaemonMetaNode
from tests.daemon.test_hotplug import daemon_node, go_nad_config, go_post, go_request_body
from tests.meta.test_tenant_hostifs import uplink


def attached(node: DaemonMetaNode, container_id: str) -> list[str]:
    record = delegate_cache.read(str(node.cni_dir), container_id)
    assert record is not None
    return [d.ifname for d in record.delegates]


def test_delegate_refuses_control_characters_in_the_interface_name(make_node: Callable[..., DaemonMetaNode]):
    node = daemon_node(make_node, "mcdlgt")
    pod = node.pod()
    node.cni("ADD", pod)
    spec = json.dumps(node.bridge_conf("net-a", "br-a", "10.89.41.0/24"))
    for ifname in ("ne\x00t9", "net\n", "net\x1b9"):
        status, answer = go_post(node, go_request_body("ADD", pod, ifname, go_nad_config(spec, "net-a")))
        assert status == 400, (status, answer)
        err = json.loads(answer)
        assert err["code"] == Code.INVALID_ENVIRONMENT and "interface name" in err["details"], err
    assert node.pod_links(pod) == {"lo", "eth0"} and attached(node, pod.container_id) == ["eth0"]
    assert node.leases("net-a") == []
    node.cni("DEL", pod)
    node.assert_clean(pod)


def test_delegate_configs_obey_the_host_interface_policy(make_node: Callable[..., DaemonMetaNode]):
    """A host-device config naming the node's link through /delegate is refused; the link stays."""
    node = daemon_node(make_node, "mcdlgh")
    uplink(node, "eth1")
    pod = node.pod()
    node.cni("ADD", pod)
    spec = json.dumps({"cniVersion": "1.0.0", "name": "hd", "type": "host-device", "device": "eth1"})
    status, answer = go_post(node, go_request_body("ADD", pod, "net1", go_nad_config(spec, "hd")))
    assert status == 400, (status, answer)
    err = json.loads(answer)
    assert err["code"] == Code.INVALID_CONFIG and "hostDevices" in err["details"] and "device" in err["details"]
    assert "eth1" in link_names(node.name) and node.pod_links(pod) == {"lo", "eth0"}
    assert attached(node, pod.container_id) == ["eth0"]
    node.cni("DEL", pod)
    node.assert_clean(pod)


def test_delegate_answers_deep_nesting_with_code_6(make_node: Callable[..., DaemonMetaNode]):
    """Security review 2026-12-03: ``/delegate`` decoded with ``json.loads``, so a request or a
    config nested deeper than the interpreter's recursion limit was a 500 (RecursionError), not
    the decoding error every other entry point gives (spec/safejson.py bounds the nesting)."""
    node = daemon_node(make_node, "mcdlgn")
    pod = node.pod()
    node.cni("ADD", pod)
    deep_config = ('{"a":' * 5000 + "1" + "}" * 5000).encode()
    for body in (b"[" * 100000, go_request_body("ADD", pod, "net1", deep_config)):
        status, answer = go_post(node, body)
        assert status == 400, (status, answer[:200])
        err = json.loads(answer)
        assert err["code"] == Code.DECODE_FAILURE, err
    assert node.pod_links(pod) == {"lo", "eth0"} and attached(node, pod.container_id) == ["eth0"]
    node.cni("DEL", pod)
    node.assert_clean(pod)
