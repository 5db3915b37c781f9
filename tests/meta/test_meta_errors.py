"""Every ADD error is a CNI error naming pod, network and reason, and leaves nothing behind."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from typing import Any

import pytest

from metacni.plugin import hookimpl
from metacni.spec.errors import Code
from metacni_testkit.firewall_testbed import ruleset
from metacni_testkit.netns import run

NETWORKS = "k8s.v1.cni.cncf.io/networks"
NETWORK_STATUS = "k8s.v1.cni.cncf.io/network-status"


@pytest.mark.parametrize(("annotation", "network", "reason"), [
    ("net-a,missing", "missing", "cannot find a network-attachment-definition"),
    ('[{"name": "net-a"}, {"name": "net-b"', None, "not valid JSON"),
    ("net-a@averyveryverylong", "net-a", "longer than"),
    ('[{"name": "net-a", "interface": "a/b"}]', "net-a", "must not contain '/'"),
    ('[{"name": "net-a", "interface": "a b"}]', "net-a", "must not contain ' '"),
    ("net-a@data0,net-b@data0", "net-b", "duplicate interface name"),
    ("net-a@net2,net-b", "net-b", "'net2' is requested by both"),
    ("net-a/x/y", "net-a/x/y", "more than one '/'"),
    ("Net-A", "Net-A", "DNS-1123"),
    ('[{"name": "net-a", "ips": ["300.1.1.1"]}]', "net-a", "is not an IP address"),
    ('[{"name": "net-a", "default-route": ["10.89.1.1"]}, {"name": "net-b", "default-route": ["10.89.2.1"]}]',
     "net-b", "ECMP"),
])
def test_bad_annotation(node, annotation, network, reason):
    node.two_nads()
    pod = node.pod(annotations={NETWORKS: annotation})
    err = node.cni_error("ADD", pod)
    text = f"{err.msg}: {err.details}"
    assert err.code == Code.INVALID_CONFIG, text
    assert "pod default/web" in text
    assert reason in text
    if network:
        assert network in text
    node.assert_clean(pod)


def test_namespace_isolation(node):
    node.add_nad("net-a", "br-a", "10.89.1.0/24", namespace="other")
    node.add_nad("net-g", "br-g", "10.89.3.0/24", namespace="shared")
    node.write_primary(extra={"namespaceIsolation": True, "globalNamespaces": "shared, default",
                              "apiTimeout": 5, "apiRetries": 0})
    pod = node.pod(namespace="team", annotations={NETWORKS: "shared/net-g,other/net-a"})
    node.api.reset_counts()
    err = node.cni_error("ADD", pod)
    assert "pod team/web" in err.details and "other/net-a" in err.details
    assert err.msg == "namespace isolation violation"
    assert node.api.count("get", "network-attachment-definitions") == 1  # net-g only; net-a never read
    node.assert_clean(pod)

    allowed = node.pod(name="ok", namespace="team", annotations={NETWORKS: "shared/net-g"})
    node.cni("ADD", allowed)
    assert node.pod_links(allowed) == {"lo", "eth0", "net1"}
    node.cni("DEL", allowed)
    node.assert_clean(allowed)


def test_rollback_when_net2_fails(node):
    node.add_nad("net-a", "br-a", "10.89.1.0/24")
    # net-b's bridge + IPAM succeed, then tuning fails on a sysctl that does not exist.
    node.add_nad("net-b", "br-b", "10.89.2.0/24",
                 extra_plugins=[{"type": "tuning", "sysctl": {"net.ipv4.conf.net2.no_such_knob": "1"}}])
    pod = node.pod(annotations={NETWORKS: "net-a,net-b"})
    err = node.cni_error("ADD", pod)
    assert "pod default/web" in err.details and "default/net-b" in err.details and "net2" in err.details
    assert "no_such_knob" in err.details  # the delegate's own reason survives
    node.assert_clean(pod)  # eth0 and net1 gone, every lease released
    # The API was not told about networks the pod does not have.
    stored = node.api.get_pod("default", "web")
    assert "k8s.v1.cni.cncf.io/network-status" not in (stored["metadata"].get("annotations") or {})


def test_rollback_when_status_write_fails(node):
    node.add_nad("net-a", "br-a", "10.89.1.0/24")
    pod = node.pod(annotations={NETWORKS: "net-a"})
    with node.api.fault(500, verb="patch", resource="pods/status"):
        err = node.cni_error("ADD", pod)
    assert err.code == Code.TRY_AGAIN_LATER and "network-status" in err.details
    node.assert_clean(pod)


@pytest.mark.parametrize("fault", [dict(status=503), dict(drop=True)])
def test_api_error_is_never_no_networks(node, fault):
    node.add_nad("net-a", "br-a", "10.89.1.0/24")
    pod = node.pod(annotations={NETWORKS: "net-a"})
    with node.api.fault(verb="get", resource="pods", **fault):
        err = node.cni_error("ADD", pod)
    assert err.code == Code.TRY_AGAIN_LATER and "pod default/web" in err.details
    node.assert_clean(pod)
    with node.api.fault(verb="get", resource="network-attachment-definitions", **fault):
        err = node.cni_error("ADD", pod)
    assert err.code == Code.TRY_AGAIN_LATER and "net-a" in err.details
    node.assert_clean(pod)


def test_pod_missing_from_api_is_retryable(node):
    pod = node.pod(in_api=False)
    err = node.cni_error("ADD", pod)
    assert err.code == Code.TRY_AGAIN_LATER and "pod default/web" in err.details
    node.assert_clean(pod)


def test_foreign_interface_in_pod_is_refused(node):
    node.add_nad("net-a", "br-a", "10.89.1.0/24")
    pod = node.pod(annotations={NETWORKS: "net-a"})
    run("ip", "link", "add", "net1", "type", "veth", "peer", "name", "other1", netns=pod.netns)  # not ours
    err = node.cni_error("ADD", pod)
    assert "net1" in err.details and "already exist" in err.details
    assert node.pod_links(pod) == {"lo", "net1", "other1"} and node.all_leases() == {}


def test_default_network_override_must_be_single(node):
    node.two_nads()
    pod = node.pod(annotations={"v1.multus-cni.io/default-network": "default/net-a,default/net-b"})
    err = node.cni_error("ADD", pod)
    assert "exactly one" in err.details and "pod default/web" in err.details
    node.assert_clean(pod)


def test_default_network_override(node):
    node.add_nad("alt", "br-alt", "10.90.0.0/24", capabilities={})
    pod = node.pod(annotations={"v1.multus-cni.io/default-network": "default/alt"})
    result = node.cni("ADD", pod)
    assert result["ips"][0]["address"].startswith("10.90.0.")
    status = node.network_status(pod)
    assert status == [dict(status[0], name="default/alt", interface="eth0", default=True)]
    node.cni("DEL", pod)
    node.assert_clean(pod)
    assert json.dumps(status)


# ------------------------------------------------------------------------------ issue #14 item 5
DEEP = "[" * 100000


@pytest.mark.parametrize(("annotation", "reason"), [
    (DEEP, "nested deeper than"),
    ('[{"name": "net-a", "ips": [NaN]}]', "NaN"),
    ('[{"name": "net-a\\n"}]', "DNS-1123"),  # a trailing newline is not part of a valid name (fullmatch)
])
def test_undecodable_annotation_is_7_and_leaves_nothing(node, annotation, reason):
    node.two_nads()
    pod = node.pod(annotations={NETWORKS: annotation})
    err = node.cni_error("ADD", pod)
    assert err.code == Code.INVALID_CONFIG, err
    assert "pod default/web" in err.details and reason in err.details
    node.assert_clean(pod)


@pytest.mark.parametrize(("config", "reason"), [
    (DEEP, "nested deeper than"),
    ('{"cniVersion": "1.0.0", "name": "net-deep", "type": "bridge", "mtu": 1e999}', "out of range"),
])
def test_undecodable_nad_config_is_7_and_leaves_nothing(node, config, reason):
    node.api.add_nad("default", "net-deep", config)
    pod = node.pod(annotations={NETWORKS: "net-deep"})
    err = node.cni_error("ADD", pod)
    assert err.code == Code.INVALID_CONFIG, err
    assert "pod default/web" in err.details and "net-deep" in err.details and reason in err.details
    node.assert_clean(pod)


def test_overlong_network_name_is_refused_before_any_plugin(node):
    """97 characters: the cache file and its temp name would exceed NAME_MAX with a 128-character
    container id; refused with 7 while resolving networks, so nothing ran (not even the primary)."""
    long_name = "n" * 97
    node.api.add_nad("default", "net-long", node.bridge_conf(long_name, "br-long", "10.89.7.0/24"))
    pod = node.pod(annotations={NETWORKS: "net-long"})
    err = node.cni_error("ADD", pod)
    assert err.code == Code.INVALID_CONFIG, err
    assert "pod default/web" in err.details and "default/net-long: $.name" in err.details
    assert "97 characters long, more than 96" in err.details
    node.assert_clean(pod)
    assert not (node.data_dir / long_name).exists()

    fits = "n" * 96  # the longest allowed name works, with a 128-character container id
    node.api.add_nad("default", "net-fits", node.bridge_conf(fits, "br-fits", "10.89.8.0/24"))
    ok = node.pod(name="fits", annotations={NETWORKS: "net-fits"})
    ok.container_id = "c" * 128
    node.cni("ADD", ok)
    assert node.pod_links(ok) == {"lo", "eth0", "net1"}
    assert f"{fits}-{ok.container_id}-net1" in node.result_cache_files()
    node.cni("DEL", ok)
    node.assert_clean(ok)


def test_container_id_with_trailing_newline_is_4_and_leaves_nothing(node):
    """Through the installed executable (skel), as a runtime calls it."""
    pod = node.pod()
    good_id = pod.container_id
    pod.container_id = good_id + "\n"
    rc, out = node.exec_binary("ADD", pod)
    assert rc == 1 and out is not None and out["code"] == Code.INVALID_ENVIRONMENT, out
    assert repr(pod.container_id) in out["details"]
    pod.container_id = good_id
    node.assert_clean(pod)
    assert not node.cni_dir.exists() or not any(node.cni_dir.iterdir())


def test_deep_nesting_on_stdin_is_6_and_leaves_nothing(node):
    pod = node.pod()
    env = dict(os.environ, CNI_COMMAND="ADD", CNI_CONTAINERID=pod.container_id, CNI_NETNS=pod.path,
               CNI_IFNAME="eth0", CNI_ARGS=pod.cni_args, CNI_PATH="/usr/lib/cni")
    metacni = shutil.which("metacni")
    assert metacni
    for stdin in (DEEP.encode(), b'{"cniVersion": "1.0.0", "name": "x", "type": "metacni", "mtu": NaN}',
                  b'{"cniVersion": "1.0.0", "name": "\xff"}', b"[1, 2]"):
        proc = subprocess.run(["ip", "netns", "exec", node.name, metacni], input=stdin, env=env,
                              capture_output=True, timeout=120)
        lines = proc.stdout.decode().splitlines()
        assert proc.returncode == 1 and len(lines) == 1, proc
        assert json.loads(lines[0])["code"] == Code.DECODE_FAILURE, lines
        assert b"Traceback" not in proc.stderr
    node.assert_clean(pod)


def test_attachment_cap(node):
    """maxAttachments (a node setting) counts the primary; refused with 7 naming the pod, before
    any NAD is read or any interface made. The default is 32."""
    node.two_nads()
    node.write_primary(extra={"maxAttachments": 2, "apiTimeout": 5, "apiRetries": 0})
    pod = node.pod(annotations={NETWORKS: "net-a,net-b"})
    node.api.reset_counts()
    err = node.cni_error("ADD", pod)
    assert err.code == Code.INVALID_CONFIG and err.msg == "too many network attachments", err
    assert "pod default/web" in err.details and "3 interfaces" in err.details and "allows 2" in err.details
    assert node.api.count("get", "network-attachment-definitions") == 0
    node.assert_clean(pod)

    one = node.pod(name="one", annotations={NETWORKS: "net-a"})  # 2 interfaces: allowed
    node.cni("ADD", one)
    assert node.pod_links(one) == {"lo", "eth0", "net1"}
    node.cni("DEL", one)
    node.assert_clean(one)

    node.write_primary()  # the default
    many = node.pod(name="many", annotations={NETWORKS: ",".join(f"net-a@n{i}" for i in range(32))})
    err = node.cni_error("ADD", many)
    assert err.code == Code.INVALID_CONFIG and "33 interfaces" in err.details and "allows 32" in err.details
    node.assert_clean(many)


class PluginCrash(BaseException):
    """Not an Exception: passes the invoker's conversion of plugin errors, as an interrupt would."""


class Crashy:
    """An in-process plugin, registered through the real registry, whose ADD crashes."""

    def __init__(self) -> None:
        self.deleted = 0

    @hookimpl
    def cni_add(self, request: Any) -> Any:
        raise PluginCrash("boom")

    @hookimpl
    def cni_del(self, request: Any) -> None:
        self.deleted += 1


def test_rollback_after_a_non_cni_exception(node):
    """net-b's bridge and host-local ran, then its next plugin raised something that is not a
    CNIError: every plugin already run is rolled back, in both chains and across networks."""
    crashy = Crashy()
    node.invoker.registry.register("crashy", crashy)
    node.add_nad("net-a", "br-a", "10.89.1.0/24")
    node.add_nad("net-b", "br-b", "10.89.2.0/24", ipMasq=True, extra_plugins=[{"type": "crashy"}])
    pod = node.pod(annotations={NETWORKS: "net-a,net-b"})
    with pytest.raises(PluginCrash):
        node.cni("ADD", pod)
    assert crashy.deleted == 1  # the crashing plugin's own DEL ran too (ADD may have half-worked)
    node.assert_clean(pod)  # no interface, veth, lease, cache file or delegate record
    assert pod.container_id not in ruleset(node.name)  # net-b's masquerade rule went too
    stored = node.api.get_pod("default", "web")
    assert NETWORK_STATUS not in (stored["metadata"].get("annotations") or {})

    # Control: the same masquerading network without the crash leaves a rule naming the pod.
    node.add_nad("net-c", "br-c", "10.89.3.0/24", ipMasq=True)
    ok = node.pod(name="ok", annotations={NETWORKS: "net-c"})
    node.cni("ADD", ok)
    assert ok.container_id in ruleset(node.name)
    node.cni("DEL", ok)
    node.assert_clean(ok)


def test_rollback_when_the_result_cache_cannot_be_written(node):
    """An OSError after the primary's plugins ran (its cache entry cannot be written): the
    installed executable answers one JSON error, and the bridge, portmap and lease are undone."""
    node.cni_dir.mkdir(parents=True, exist_ok=True)
    (node.cni_dir / "results").write_text("not a directory")
    pod = node.pod()
    rc, out = node.exec_binary("ADD", pod)
    assert rc == 1 and out is not None and out["code"] == Code.INTERNAL, out
    assert node.pod_links(pod) == {"lo"} and node.veths() == [] and node.all_leases() == {}
    assert not (node.cni_dir / pod.container_id).exists()
