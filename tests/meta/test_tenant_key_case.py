"""A NAD cannot slip a key past the tenant checks by its spelling (security review, 2026-12-03).

Go's ``encoding/json``, which every reference plugin decodes its config with, matches object keys
case-insensitively and lets the last of two matches win: ``"Device": "eth1"`` is host-device's
``device``. The checks read exact keys, so any other spelling of a key they read, and any two keys
of one object that differ only in case, are refused (metacni/meta/trust.py, check_key_spelling).

The ADDs go through the real in-process meta plugin, the fake API and the reference binaries; a
refusal must leave the node's links, leases and caches as they were (``refused``). Without the
rule, the host-device case moves the node's ``eth1`` into the pod, and the assertions fail.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from metacni.engine.chain import plugin_config
from metacni.meta.trust import CHECKED_PLUGIN_KEYS, TenantPolicy, sanitize_tenant_config
from metacni.spec.config import network_list_from_bytes
from metacni.spec.errors import CNIError, Code
from metacni_testkit.netns import link_names
from metacni_testkit.nodes import NETWORKS, PRIMARY, PRIMARY_SUBNET
from metacni_testkit.nodes import Node as MetaNode
from tests.meta.test_tenant_hostifs import allow, ipam, nad, refused, uplink


def _bridge(node: MetaNode, **extra: Any) -> dict[str, Any]:
    return {"type": "bridge", "bridge": "br-case", "ipam": ipam(node, "10.89.77.0/24"), **extra}


CASES: dict[str, Any] = {
    # (NAD config from the node, the words the refusal must hold)
    "host-device Device": (lambda n: {"type": "host-device", "Device": "eth1"}, ["'Device'", "'device'"]),
    "host-device PciBusID": (lambda n: {"type": "host-device", "PciBusID": "0000:00:01.0"}, ["'PciBusID'"]),
    "macvlan Master": (lambda n: {"type": "macvlan", "Master": "cni0", "ipam": ipam(n, "10.89.78.0/24")},
                       ["'Master'", "'master'"]),
    "macvlan Mode passthru": (lambda n: {"type": "macvlan", "master": "eth1", "Mode": "passthru",
                                         "ipam": ipam(n, "10.89.78.0/24")}, ["'Mode'"]),
    "master twice": (lambda n: {"type": "macvlan", "master": "eth1", "MASTER": "cni0",
                                "ipam": ipam(n, "10.89.78.0/24")}, ["'master'", "'MASTER'", "differ only in case"]),
    "IPAM": (lambda n: {"type": "bridge", "bridge": "br-case", "IPAM": ipam(n, "10.89.77.0/24")}, ["'IPAM'"]),
    "ipam.Type": (lambda n: _bridge(n, ipam={"Type": "host-local", "dataDir": "/etc/cni/net.d",
                                             "ranges": [[{"subnet": "10.89.77.0/24"}]]}), ["'ipam.Type'"]),
    "ipam.DataDir": (lambda n: _bridge(n, ipam={**ipam(n, "10.89.77.0/24"), "DataDir": "/etc"}),
                     ["'ipam.dataDir'", "'ipam.DataDir'", "differ only in case"]),
    "range Subnet": (lambda n: _bridge(n, ipam={"type": "host-local", "dataDir": str(n.data_dir),
                                                "ranges": [[{"Subnet": f"{PRIMARY_SUBNET}.0/24"}]]}),
                     ["'ipam.ranges[0][0].Subnet'"]),
    "RuntimeConfig": (lambda n: _bridge(n, RuntimeConfig={"portMappings": [{"hostPort": 80, "containerPort": 80}]}),
                      ["'RuntimeConfig'"]),
    "runtimeConfig.DeviceID": (lambda n: {"type": "host-device", "runtimeConfig": {"DeviceID": "0000:00:01.0"}},
                               ["'runtimeConfig.DeviceID'"]),
    "portmap MarkMasqBit": (lambda n: {"plugins": [_bridge(n), {"type": "portmap", "MarkMasqBit": 14,
                                                                "capabilities": {"portMappings": True}}]},
                            ["'plugins[1].MarkMasqBit'"]),
    "node-only BinDir": (lambda n: _bridge(n, BinDir="/tmp"), ["'BinDir'", "'binDir'"]),
    "nested twins": (lambda n: {"plugins": [_bridge(n), {"type": "tuning", "sysctl": {"a": "1", "A": "2"}}]},
                     ["'plugins[1].sysctl.a'", "'plugins[1].sysctl.A'"]),
    "multus": (lambda n: {"type": "multus", "delegates": [_bridge(n)]}, ["'multus'", "meta plugin"]),
    "tuning dataDir": (lambda n: {"plugins": [_bridge(n), {"type": "tuning", "mtu": 1400,
                                                           "dataDir": "/etc"}]},
                       ["plugins[1].dataDir", "tuning.dataDir"]),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_key_spelled_otherwise_is_refused_before_any_change(node: MetaNode, case: str):
    allow(node)
    uplink(node, "eth1")
    make, words = CASES[case]
    nad(node, "odd", make(node))
    pod = node.pod(annotations={NETWORKS: "odd"})
    refused(node, pod, "default/odd", *words)
    assert "eth1" in link_names(node.name)  # host-device never took it


def test_the_same_keys_spelled_right_still_work(node: MetaNode):
    """The rule refuses spellings, not plugins: the canonical bridge NAD attaches, and DEL
    leaves nothing."""
    allow(node)
    nad(node, "fine", {"plugins": [_bridge(node), {"type": "portmap", "capabilities": {"portMappings": True}}]})
    pod = node.pod(annotations={NETWORKS: "fine"})
    node.cni("ADD", pod)
    assert {"eth0", "net1"} <= node.pod_links(pod)
    node.cni("DEL", pod)
    node.assert_clean(pod)


def test_the_primary_pool_cannot_be_named_by_a_spelling_of_name(node: MetaNode):
    """``"Name": <the primary's>`` (the Go plugins' ``name``): refused; host-local would keep
    the leases in the primary's pool."""
    allow(node)
    conf = node.bridge_conf("squat", "br-squat", f"{PRIMARY_SUBNET}.0/24")
    del conf["name"]
    conf["Name"] = PRIMARY
    node.api.add_nad("default", "squat", conf)  # type: ignore[union-attr]
    pod = node.pod(annotations={NETWORKS: "squat"})
    refused(node, pod, "default/squat", "'Name'")


_LIBCNI = ("name", "cniVersion", "prevResult", "runtimeConfig")


def _spellings(key: str) -> st.SearchStrategy[str]:
    return st.lists(st.booleans(), min_size=len(key), max_size=len(key)).map(
        lambda upper: "".join(c.upper() if u else c.lower() for c, u in zip(key, upper, strict=True)))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.sampled_from(_LIBCNI).flatmap(_spellings), max_size=6))
def test_a_delegates_stdin_holds_libcni_keys_only_as_libcni_sets_them(spelled: list[str]):
    """Whatever spellings of name/cniVersion/prevResult/runtimeConfig a plugin object carries
    (a node's own config included), the stdin built for it has exactly libcni's."""
    net = network_list_from_bytes(json.dumps({"cniVersion": "1.0.0", "name": "n1",
                                              "plugins": [{"type": "x"}]}).encode(), "test")
    plugin: dict[str, Any] = {"type": "x", "capabilities": {"portMappings": True}}
    plugin.update({key: {"portMappings": [{"hostPort": 1}]} for key in spelled})
    conf = plugin_config(plugin, net, {"portMappings": [{"hostPort": 8080}]})
    libcni = {k for k in conf if k.casefold() in {x.casefold() for x in _LIBCNI}}
    assert libcni == {"name", "cniVersion", "runtimeConfig"}
    assert (conf["name"], conf["cniVersion"]) == ("n1", "1.0.0")
    assert conf["runtimeConfig"] == {"portMappings": [{"hostPort": 8080}]}


@settings(max_examples=80, deadline=None)
@given(st.sampled_from(sorted(CHECKED_PLUGIN_KEYS)).flatmap(lambda k: st.tuples(st.just(k), _spellings(k))))
def test_every_checked_key_is_refused_in_any_other_spelling(pair: tuple[str, str]):
    key, spelled = pair
    conf = {"type": "bridge", spelled: "x"} if key != "type" else {spelled: "bridge"}
    try:
        sanitize_tenant_config(conf, "NAD ns/x", TenantPolicy(), "ns")
    except CNIError as exc:
        if spelled != key:
            assert exc.code == Code.INVALID_CONFIG and repr(spelled) in exc.details, exc.details
        return
    assert spelled == key
