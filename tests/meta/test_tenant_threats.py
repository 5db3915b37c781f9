"""Tenant threats (issue #14 items 1-3): what a NAD author or pod author can make metacni do.

Each test runs the real in-process meta plugin against the fake API in real namespaces and
proves three things: no executable outside CNI_PATH ran (marker binaries in the tenant's
directory), no file was written outside metacni's own state dirs (snapshots of the tenant's
directory and the node's tree), and the ADD failed with code 7 naming field, pod and network,
or succeeded without the tenant's setting.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator
from typing import Any

import pytest

from metacni.spec.errors import Code
from metacni_testkit.nodes import NETWORKS, Pod
from metacni_testkit.nodes import Node as MetaNode
from tests.meta.tenant_support import Tenant, nad_conf, node_snapshot, tenant_dir

DEFAULT_NETWORK = "v1.multus-cni.io/default-network"


@pytest.fixture
def tenant() -> Iterator[Tenant]:
    with tenant_dir() as t:
        yield t


def meta_nad(node: MetaNode, tenant: Tenant) -> dict[str, Any]:
    """The issue's exploit: a NAD of type metacni taking every node setting from the tenant."""
    return {"cniVersion": "1.0.0", "name": "evil", "type": "metacni",
            "binDir": str(tenant.bin_dir), "cniDir": str(tenant.root / "cni"), "confDir": str(tenant.conf_dir),
            "clusterNetwork": str(tenant.conf_dir / "00-evil.conflist"),
            "logFile": str(node.conf_dir / "00-aaa.conf"),
            "delegates": [{"cniVersion": "1.0.0", "name": "x", "type": "x"}]}


def refused(node: MetaNode, tenant: Tenant, pod: Pod, *words: str) -> None:
    """ADD fails with 7 naming the pod and ``words``; nothing ran, nothing was written, and the
    pod's namespace and the node are clean (no lease, veth, cache)."""
    before = node_snapshot(node, tenant)
    err = node.cni_error("ADD", pod)
    assert err.code == Code.INVALID_CONFIG, err
    assert f"pod {pod.namespace}/{pod.name}" in err.details, err.details
    for word in words:
        assert word in err.details, (word, err.details)
    assert tenant.ran() == []
    assert node_snapshot(node, tenant) == before
    node.assert_clean(pod)
    node.cni("DEL", pod)  # the runtime's DEL after a failed ADD is fine and runs nothing of the tenant's
    assert tenant.ran() == []
    node.assert_clean(pod)


# ------------------------------------------------------------------------------ item 1: type metacni
@pytest.mark.parametrize("shape", ["nad", "conflist-plugin", "ipam"])
def test_nad_of_type_metacni_is_refused(node: MetaNode, tenant: Tenant, shape: str):
    conf = meta_nad(node, tenant)
    if shape == "conflist-plugin":
        bridge = {k: v for k, v in nad_conf(node, "evil").items() if k not in ("cniVersion", "name")}
        plugin = {k: v for k, v in conf.items() if k not in ("cniVersion", "name")}
        conf = {"cniVersion": "1.0.0", "name": "evil", "plugins": [bridge, plugin]}
        where = "plugins[1].type"
    elif shape == "ipam":
        conf = nad_conf(node, "evil")
        conf["ipam"] = {k: v for k, v in meta_nad(node, tenant).items() if k not in ("cniVersion", "name")}
        where = "ipam.type"
    else:
        where = "type"
    node.api.add_nad("default", "evil", conf)
    pod = node.pod(annotations={NETWORKS: "evil"})
    refused(node, tenant, pod, "default/evil", where, "'metacni'")
    assert not (node.conf_dir / "00-aaa.conf").exists()


def test_default_network_override_of_type_metacni_is_refused(node: MetaNode, tenant: Tenant):
    node.api.add_nad("default", "evil", meta_nad(node, tenant))
    pod = node.pod(annotations={DEFAULT_NETWORK: "default/evil"})
    refused(node, tenant, pod, "default/evil", "'metacni'")


def test_default_networks_resolved_from_a_metacni_nad_are_refused(node: MetaNode, tenant: Tenant):
    """clusterNetwork/defaultNetworks naming a NAD: the NAD is still tenant input."""
    node.write_primary(extra={"defaultNetworks": ["evil"], "apiTimeout": 5, "apiRetries": 0})
    node.api.add_nad("kube-system", "evil", meta_nad(node, tenant))
    pod = node.pod()
    refused(node, tenant, pod, "kube-system/evil", "'metacni'")


def test_node_delegates_entry_of_type_metacni_is_refused(node: MetaNode, tenant: Tenant):
    conf = node.meta_conf()
    del conf["clusterNetwork"]
    conf["delegates"] = [meta_nad(node, tenant)]
    pod = node.pod()
    before = node_snapshot(node, tenant)
    err = node.cni_error("ADD", pod, conf=conf)
    assert err.code == Code.INVALID_CONFIG and "delegates[0]" in err.details and "metacni" in err.details
    assert tenant.ran() == [] and node_snapshot(node, tenant) == before
    node.assert_clean(pod)


def test_a_nested_meta_call_is_refused_at_run_time(node: MetaNode, tenant: Tenant):
    """Belt and braces: whatever config reaches it, the meta plugin refuses to run inside itself."""
    from metacni.meta import trust

    pod = node.pod()
    with trust.meta_call():
        err = node.cni_error("ADD", pod)
    assert err.code == Code.INVALID_CONFIG and "metacni" in err.details
    assert tenant.ran() == []
    node.assert_clean(pod)


# ------------------------------------------------------------------------------ item 1: meta keys
def test_meta_keys_in_nad_configs_are_ignored_with_a_warning(node: MetaNode, tenant: Tenant,
                                                             caplog: pytest.LogCaptureFixture):
    tenant_keys = {"binDir": str(tenant.bin_dir), "cniDir": str(tenant.root / "cni"),
                   "confDir": str(tenant.conf_dir), "clusterNetwork": str(tenant.conf_dir / "00-evil.conflist"),
                   "logFile": str(node.conf_dir / "00-aaa.conf"), "kubeconfig": str(tenant.root / "kc"),
                   "daemonSocket": str(tenant.root / "sock"), "apiTimeout": 1,
                   "allowedPaths": {"dataDir": [str(tenant.root)]}}
    bridge = {k: v for k, v in nad_conf(node, "net-t").items() if k not in ("cniVersion", "name")}
    conf = {"cniVersion": "1.0.0", "name": "net-t", **tenant_keys,
            "plugins": [{**bridge, **tenant_keys}, {"type": "portmap", "capabilities": {"portMappings": True},
                                                    **tenant_keys}]}
    node.api.add_nad("default", "net-t", conf)
    pod = node.pod(annotations={NETWORKS: "net-t"})
    before = node_snapshot(node, tenant)
    with caplog.at_level(logging.WARNING, logger="metacni.meta.trust"):
        node.cni("ADD", pod)
    assert node.pod_links(pod) == {"lo", "eth0", "net1"}
    assert tenant.ran() == []
    assert node_snapshot(node, tenant) == before
    assert not (node.conf_dir / "00-aaa.conf").exists()
    warned = " ".join(r.getMessage() for r in caplog.records)
    assert "default/net-t" in warned and "binDir" in warned and "logFile" in warned
    # What the delegates saw (and DEL will see): the cached config holds none of the tenant's keys.
    cached = [json.loads(p.read_text()) for p in (node.cni_dir / "results").iterdir()]
    import base64

    configs = [json.loads(base64.b64decode(c["config"])) for c in cached if c["networkName"] == "net-t"]
    assert configs and not any(k in json.dumps(configs) for k in ("binDir", "daemonSocket", "00-aaa.conf"))
    node.cni("DEL", pod)
    assert tenant.ran() == []
    node.assert_clean(pod)


def test_meta_keys_in_a_node_delegates_entry_do_not_reach_meta(node: MetaNode, tenant: Tenant):
    """The node's own delegates entry is trusted, but its meta-looking keys are a plugin's, not
    metacni's: binDir there does not change where metacni finds binaries."""
    conf = node.meta_conf()
    del conf["clusterNetwork"]
    conf["delegates"] = [{**json.loads((node.conf_dir / "10-primary.conflist").read_text()),
                          "binDir": str(tenant.bin_dir), "cniDir": str(tenant.root / "cni")}]
    conf["delegates"][0]["plugins"][0]["binDir"] = str(tenant.bin_dir)
    pod = node.pod()
    before = node_snapshot(node, tenant)
    node.cni("ADD", pod, conf=conf)
    assert node.pod_links(pod) == {"lo", "eth0"}
    node.cni("DEL", pod, conf=conf)
    assert tenant.ran() == [] and node_snapshot(node, tenant) == before
    node.assert_clean(pod)


def test_a_nad_delegate_type_is_looked_up_in_cni_path_only(node: MetaNode, tenant: Tenant):
    """binDir in a NAD does not add the tenant's directory to the search path."""
    node.api.add_nad("default", "net-x", {"cniVersion": "1.0.0", "name": "net-x", "type": "x",
                                          "binDir": str(tenant.bin_dir)})
    pod = node.pod(annotations={NETWORKS: "net-x"})
    before = node_snapshot(node, tenant)
    err = node.cni_error("ADD", pod)
    assert "default/net-x" in err.details and str(tenant.bin_dir) not in err.details
    assert tenant.ran() == [] and node_snapshot(node, tenant) == before
    node.assert_clean(pod)


# ------------------------------------------------------------------------------ item 2: paths
def _ipam_nad(node: MetaNode, **ipam: Any) -> dict[str, Any]:
    conf = nad_conf(node, "net-t")
    conf["ipam"].update(ipam)
    return conf


@pytest.mark.parametrize("case", ["dataDir", "resolvConf", "dotdot", "symlink", "own-state", "relative"])
def test_host_local_paths_outside_the_allowed_dirs_are_refused(node: MetaNode, tenant: Tenant, case: str,
                                                               monkeypatch: pytest.MonkeyPatch):
    data_dir = str(node.data_dir)
    if case == "dataDir":
        ipam, field = {"dataDir": str(tenant.root / "leases")}, "ipam.dataDir"
    elif case == "resolvConf":
        secret = tenant.root / "resolv.conf"
        secret.write_text("nameserver 10.0.0.53\n")
        ipam, field = {"resolvConf": str(secret)}, "ipam.resolvConf"
    elif case == "dotdot":
        ipam, field = {"dataDir": f"{data_dir}/../../{os.path.relpath(tenant.root, '/')}"}, "ipam.dataDir"
    elif case == "symlink":
        allowed = node.root / "allowed"
        allowed.mkdir()
        (allowed / "link").symlink_to(tenant.root)
        node.write_primary(extra={"allowedPaths": {"dataDir": [str(allowed)]}, "apiTimeout": 5, "apiRetries": 0})
        ipam, field = {"dataDir": str(allowed / "link")}, "ipam.dataDir"
    elif case == "own-state":  # metacni's cniDir, even were it allowed
        node.write_primary(extra={"allowedPaths": {"dataDir": [str(node.root)]}, "apiTimeout": 5,
                                  "apiRetries": 0})
        ipam, field = {"dataDir": str(node.cni_dir)}, "ipam.dataDir"
    else:  # relative: were it accepted, it would land in the tenant's directory (the snapshot sees it)
        monkeypatch.chdir(tenant.root)
        ipam, field = {"dataDir": "leases"}, "ipam.dataDir"
    node.api.add_nad("default", "net-t", _ipam_nad(node, **ipam))
    pod = node.pod(annotations={NETWORKS: "net-t"})
    refused(node, tenant, pod, "default/net-t", field)


def test_host_local_paths_inside_the_allowed_dirs_work(node: MetaNode, tenant: Tenant):
    resolv = node.root / "resolv" / "resolv.conf"
    resolv.parent.mkdir()
    resolv.write_text("nameserver 10.0.0.53\nsearch tenant.local\n")
    node.write_primary(extra={"allowedPaths": {"dataDir": [str(node.data_dir)], "resolvConf": [str(resolv.parent)]},
                              "apiTimeout": 5, "apiRetries": 0})
    node.api.add_nad("default", "net-t", _ipam_nad(node, resolvConf=str(resolv)))
    pod = node.pod(annotations={NETWORKS: "net-t"})
    node.cni("ADD", pod)
    [status] = [s for s in node.network_status(pod) if s["name"] == "default/net-t"]
    assert status["dns"]["nameservers"] == ["10.0.0.53"]
    node.cni("DEL", pod)
    assert tenant.ran() == []
    node.assert_clean(pod)


def test_the_nodes_own_conf_may_use_any_path(node: MetaNode, tenant: Tenant):
    """Paths in the node's own files are the node admin's choice: the primary's dataDir here is
    under the test root, which the node policy does not list for NADs."""
    node.write_primary(extra={"apiTimeout": 5, "apiRetries": 0})  # the default allowedPaths only
    pod = node.pod()
    node.cni("ADD", pod)
    assert node.leases("primary-net")
    node.cni("DEL", pod)
    node.assert_clean(pod)


# ------------------------------------------------------------------------------ item 3: annotations
def _port_nad(node: MetaNode, namespace: str = "default", name: str = "net-p") -> None:
    node.add_nad(name, "br-p", "10.89.8.0/24", namespace=namespace,
                 extra_plugins=[{"type": "portmap", "capabilities": {"portMappings": True}}],
                 capabilities={"ips": True, "mac": True})


@pytest.mark.parametrize("port, word", [(22, "outside the node's range"), (10250, "reserved"),
                                        (10248, "reserved"), (2379, "reserved")])
def test_annotation_host_port_below_1024_or_of_the_kubelet_is_refused(node: MetaNode, tenant: Tenant,
                                                                      port: int, word: str):
    _port_nad(node)
    selection = [{"name": "net-p", "portMappings": [{"hostPort": port, "containerPort": 80, "protocol": "tcp"}]}]
    pod = node.pod(annotations={NETWORKS: json.dumps(selection)})
    refused(node, tenant, pod, "default/net-p", "portMappings[0]", f"hostPort {port}", word)


def test_host_port_range_is_a_node_setting(node: MetaNode, tenant: Tenant):
    node.write_primary(extra={"hostPortRange": "30000-32767", "apiTimeout": 5, "apiRetries": 0})
    _port_nad(node)
    selection = [{"name": "net-p", "portMappings": [{"hostPort": 8080, "containerPort": 80}]}]
    pod = node.pod(annotations={NETWORKS: json.dumps(selection)})
    refused(node, tenant, pod, "hostPort 8080", "30000-32767")


@pytest.mark.parametrize("field, value, word", [
    ("ips", ["127.0.0.1/8"], "unicast"), ("ips", ["0.0.0.0"], "unicast"),
    ("mac", "01:00:5e:00:00:01", "unicast"), ("mac", "00:00:00:00:00:00", "unicast"),
    ("cni-args", {"ips": ["224.0.0.1"]}, "unicast"), ("cni-args", {"mac": "01:00:5e:00:00:01"}, "unicast"),
    ("cni-args", {"mac": 5}, "cni-args.mac")])
def test_annotation_addresses_obey_the_node_policy(node: MetaNode, tenant: Tenant, field: str, value: Any,
                                                   word: str):
    _port_nad(node)
    pod = node.pod(annotations={NETWORKS: json.dumps([{"name": "net-p", field: value}])})
    refused(node, tenant, pod, "default/net-p", word)


def test_only_own_or_global_namespace_nads_may_carry_ports_and_addresses(node: MetaNode, tenant: Tenant):
    _port_nad(node, namespace="other")
    selection = [{"name": "net-p", "namespace": "other", "ips": ["10.89.8.50/24"]}]
    pod = node.pod(annotations={NETWORKS: json.dumps(selection)})
    refused(node, tenant, pod, "other/net-p", "ips", "globalNamespaces")


def test_allowed_annotation_ports_and_addresses_work(node: MetaNode, tenant: Tenant):
    _port_nad(node)
    selection = [{"name": "net-p", "ips": ["10.89.8.50/24"], "mac": "02:00:00:00:00:50",
                  "portMappings": [{"hostPort": 18080, "containerPort": 80, "protocol": "tcp"}]}]
    pod = node.pod(annotations={NETWORKS: json.dumps(selection)})
    node.cni("ADD", pod)
    [status] = [s for s in node.network_status(pod) if s["name"] == "default/net-p"]
    assert status["ips"] == ["10.89.8.50"] and status["mac"] == "02:00:00:00:00:50"
    node.cni("DEL", pod)
    assert tenant.ran() == []
    node.assert_clean(pod)


def test_runtime_host_ports_of_the_primary_are_not_restricted(node: MetaNode, tenant: Tenant):
    """hostPorts the kubelet passes for the primary are the cluster admin's business."""
    pod = node.pod()
    node.cni("ADD", pod, runtime_config={"portMappings": [{"hostPort": 80, "containerPort": 80,
                                                           "protocol": "tcp"}]})
    node.cni("DEL", pod, runtime_config={"portMappings": [{"hostPort": 80, "containerPort": 80,
                                                           "protocol": "tcp"}]})
    assert tenant.ran() == []
    node.assert_clean(pod)


def test_cross_namespace_default_network_override_obeys_namespace_isolation(node: MetaNode, tenant: Tenant):
    node.write_primary(extra={"namespaceIsolation": True, "globalNamespaces": ["shared"], "apiTimeout": 5,
                              "apiRetries": 0})
    node.add_nad("primary-b", "br-o", "10.89.9.0/24", namespace="team-b")
    pod = node.pod(namespace="team-a", annotations={DEFAULT_NETWORK: "team-b/primary-b"})
    refused(node, tenant, pod, "team-b/primary-b", "namespace", "team-a")
    # its own namespace is fine
    node.add_nad("primary-a", "br-o", "10.89.9.0/24", namespace="team-a")
    own = node.pod(name="web2", namespace="team-a", annotations={DEFAULT_NETWORK: "team-a/primary-a"})
    node.cni("ADD", own)
    assert node.network_status(own)[0]["name"] == "team-a/primary-a"
    node.cni("DEL", own)
    assert tenant.ran() == []
    node.assert_clean(own)
