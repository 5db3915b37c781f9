"""NADs may name the node's links and devices only as the node allows (metacni/meta/hostifs.py,
docs/design/1409-host-interfaces.md): the real in-process meta plugin, the fake API, real links
in the test's own node namespace, the reference binaries (host-device, macvlan, vlan, portmap)."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from metacni.engine.invoke import Invoker
from metacni.engine.registry import Registry
from metacni.spec.errors import Code
from metacni_testkit.netns import addresses, link_names, links, run
from metacni_testkit.nodes import CNI_PATH, NETWORKS, Pod
from metacni_testkit.nodes import Node as MetaNode
from tests.meta.test_tenant_bridges import reaches

API = {"apiTimeout": 5, "apiConnectTimeout": 2, "apiRetries": 0}


def ipam(node: MetaNode, subnet: str) -> dict[str, Any]:
    return {"type": "host-local", "dataDir": str(node.data_dir), "ranges": [[{"subnet": subnet}]]}


def nad(node: MetaNode, name: str, conf: dict[str, Any], namespace: str = "default") -> None:
    node.api.add_nad(namespace, name, {"cniVersion": "1.0.0", "name": name, **conf})  # type: ignore[union-attr]


def uplink(node: MetaNode, name: str) -> None:
    """A node link ``name`` (a veth whose peer ``<name>p`` stays in the node: this kernel has no
    dummy links), both up."""
    run("ip", "link", "add", name, "type", "veth", "peer", "name", f"{name}p", netns=node.name)
    for link in (name, f"{name}p"):
        run("ip", "link", "set", link, "up", netns=node.name)


def kind_of(netns: str, name: str) -> str:
    out = json.loads(run("ip", "-d", "-j", "link", "show", "dev", name, netns=netns).stdout)
    return str(out[0].get("linkinfo", {}).get("info_kind", ""))


def refused(node: MetaNode, pod: Pod, *words: str, conf: dict[str, Any] | None = None) -> None:
    """ADD (with stdin ``conf``, default the node's) is code 7 naming the pod and ``words``,
    before any kernel or file work: the node's links, leases and caches are exactly as they
    were, and the pod has only ``lo``."""
    before = (node_links(node), node.all_leases(), node.result_cache_files())
    err = node.cni_error("ADD", pod, conf=conf)
    assert err.code == Code.INVALID_CONFIG, err
    for word in (f"pod {pod.namespace}/{pod.name}", *words):
        assert word in err.details, (word, err.details)
    assert (node_links(node), node.all_leases(), node.result_cache_files()) == before
    assert node.pod_links(pod) == {"lo"}
    assert not (node.cni_dir / pod.container_id).exists()


def node_links(node: MetaNode) -> list[tuple[str, str, str, str]]:
    """The node's links as a refused ADD must leave them: (name, kind, MAC, master). Not their
    flags or operstate: a bridge whose last port an earlier DEL removed loses its carrier a
    moment later (the kernel's linkwatch runs deferred), whatever this ADD does."""
    return sorted((ln["ifname"], ln.get("link_type", ""), ln.get("address", ""), ln.get("master", ""))
                  for ln in links(node.name))


def allow(node: MetaNode, **settings: Any) -> None:
    node.write_primary(extra={**API, **settings})


# ------------------------------------------------------------------------------ host-device
@pytest.mark.parametrize("key", ["device", "hwaddr"])
def test_host_device_cannot_take_a_node_link(node: MetaNode, key: str):
    uplink(node, "eth1")
    mac = next(ln["address"] for ln in links(node.name) if ln["ifname"] == "eth1")
    nad(node, "hd", {"type": "host-device", key: "eth1" if key == "device" else mac})
    pod = node.pod(annotations={NETWORKS: "hd"})
    refused(node, pod, "default/hd", key, "hostDevices", "resourceName")
    assert "eth1" in link_names(node.name)  # the node keeps its link


def test_host_device_takes_a_link_the_node_lists_in_host_devices(node: MetaNode):
    uplink(node, "eth1")
    allow(node, hostDevices=["eth1"])
    nad(node, "hd", {"type": "host-device", "device": "eth1"})
    pod = node.pod(annotations={NETWORKS: "hd"})
    node.cni("ADD", pod)
    assert "eth1" not in link_names(node.name)
    assert node.pod_links(pod) == {"lo", "eth0", "net1"} and kind_of(pod.netns, "net1") == "veth"
    node.cni("DEL", pod)
    assert "eth1" in link_names(node.name)  # host-device's DEL gives it back
    node.assert_clean(pod)


@pytest.mark.parametrize(("key", "value"), [("deviceID", "0000:00:1f.6"), ("pciBusID", "0000:00:1f.6"),
                                            ("runtimeConfig", {"deviceID": "0000:00:1f.6"})])
def test_device_ids_come_from_the_device_plugin_not_the_nad(node: MetaNode, key: str, value: Any):
    nad(node, "sriov", {"type": "host-device", key: value})
    refused(node, node.pod(annotations={NETWORKS: "sriov"}), "default/sriov", key, "0000:00:1f.6", "hostDevices")


# ------------------------------------------------------------------------------ parents: master
def test_macvlan_on_an_uplink_works_by_default_with_traffic(node: MetaNode):
    """The Multus quickstart recipe: macvlan, bridge mode, master eth0 (here the node's own
    eth0, a veth); two pods reach each other through it."""
    uplink(node, "eth0")
    nad(node, "mv", {"type": "macvlan", "master": "eth0", "mode": "bridge", "ipam": ipam(node, "10.89.30.0/24")})
    first, second = (node.pod(n, annotations={NETWORKS: "mv"}) for n in ("mv1", "mv2"))
    for pod in (first, second):
        node.cni("ADD", pod)
        assert kind_of(pod.netns, "net1") == "macvlan"
    address = addresses("net1", first.netns)[0].split("/")[0]
    assert reaches(second, first.netns, address)
    for pod in (first, second):
        node.cni("DEL", pod)
    for pod in (first, second):
        node.assert_clean(pod)


@pytest.mark.parametrize("kind", ["macvlan", "ipvlan", "vlan"])
def test_a_parent_the_node_does_not_list_is_refused(node: MetaNode, kind: str):
    """cni0 (the primary's bridge: every pod's L2) and a link outside hostInterfaces. Once
    allowed, the plugin gets the config (this kernel has no ipvlan or 8021q: for those the
    plugin's own error proves it ran, and the ADD is rolled back)."""
    uplink(node, "mcup0")
    extra = {"vlanId": 42} if kind == "vlan" else {}
    for master in ("cni0", "mcup0"):
        nad(node, f"p-{master}", {"type": kind, "master": master, "ipam": ipam(node, "10.89.31.0/24"), **extra})
        pod = node.pod(f"p-{master}", annotations={NETWORKS: f"p-{master}"})
        refused(node, pod, f"default/p-{master}", "master", repr(master), "hostInterfaces")
    allow(node, hostInterfaces=["mcup*"])
    pod = node.pod("ok", annotations={NETWORKS: "p-mcup0"})
    if kind == "macvlan":
        node.cni("ADD", pod)
        assert kind_of(pod.netns, "net1") == kind
        node.cni("DEL", pod)
    else:
        err = node.cni_error("ADD", pod)
        assert err.code != Code.INVALID_CONFIG and f"plugin {kind!r}, ADD" in err.details, err
    node.assert_clean(pod)
    refused(node, node.pod("again", annotations={NETWORKS: "p-cni0"}), "cni0", "hostInterfaces")


def test_an_empty_host_interfaces_refuses_the_default_master_too(node: MetaNode):
    nad(node, "mv", {"type": "macvlan", "ipam": ipam(node, "10.89.32.0/24")})
    allow(node, hostInterfaces=[])
    refused(node, node.pod(annotations={NETWORKS: "mv"}), "master", "None", "hostInterfaces")


def test_macvlan_passthru_takes_the_link_so_needs_host_devices(node: MetaNode):
    uplink(node, "eth0")
    nad(node, "pt", {"type": "macvlan", "master": "eth0", "mode": "passthru", "ipam": ipam(node, "10.89.33.0/24")})
    refused(node, node.pod("p1", annotations={NETWORKS: "pt"}), "mode", "passthru", "'eth0'", "hostDevices")
    nad(node, "pt-default", {"type": "macvlan", "mode": "passthru", "ipam": ipam(node, "10.89.34.0/24")})
    refused(node, node.pod("p2", annotations={NETWORKS: "pt-default"}), "default-route link", "hostDevices")
    allow(node, hostDevices=["eth0"])
    pod = node.pod("p3", annotations={NETWORKS: "pt"})
    node.cni("ADD", pod)
    assert kind_of(pod.netns, "net1") == "macvlan"
    node.cni("DEL", pod)
    node.assert_clean(pod)


def test_a_nad_bridge_may_not_take_an_uplink_name(node: MetaNode):
    """Else another NAD's macvlan on "eth5" (an uplink name) would join that tenant's bridge."""
    nad(node, "br", node.bridge_conf("br", "eth5", "10.89.35.0/24"))
    refused(node, node.pod(annotations={NETWORKS: "br"}), "bridge", "'eth5'", "hostInterfaces")
    assert "eth5" not in link_names(node.name)


# ------------------------------------------------------------------------------ nadPluginTypes
def test_nad_plugin_types_is_an_opt_in_allowlist(node: MetaNode):
    uplink(node, "eth0")
    nad(node, "mv", {"type": "macvlan", "master": "eth0", "ipam": ipam(node, "10.89.36.0/24")})
    node.add_nad("brn", "br-types", "10.89.37.0/24")
    allow(node, nadPluginTypes=["bridge", "host-local"])
    refused(node, node.pod("a", annotations={NETWORKS: "mv"}), "type", "'macvlan'", "nadPluginTypes")
    ok = node.pod("b", annotations={NETWORKS: "brn"})
    node.cni("ADD", ok)
    node.cni("DEL", ok)
    node.assert_clean(ok)
    allow(node, nadPluginTypes=["bridge"])  # ipam types count too
    refused(node, node.pod("c", annotations={NETWORKS: "brn"}), "ipam.type", "'host-local'", "nadPluginTypes")


def test_node_conf_files_are_the_nodes_and_not_bounded(node: MetaNode):
    """A NAD with an empty spec.config uses the node's file of that name: trusted as written."""
    uplink(node, "mcnode0")
    conf = {"cniVersion": "1.0.0", "name": "node-mv", "type": "macvlan", "master": "mcnode0",
            "ipam": ipam(node, "10.89.38.0/24")}
    (node.conf_dir / "50-node-mv.conf").write_text(json.dumps(conf))
    node.api.add_nad("default", "node-mv", "")  # type: ignore[union-attr]
    pod = node.pod(annotations={NETWORKS: "node-mv"})
    node.cni("ADD", pod)
    assert kind_of(pod.netns, "net1") == "macvlan"
    node.cni("DEL", pod)
    node.assert_clean(pod)


# ------------------------------------------------------------------------------ host ports, any delegate
@pytest.fixture
def recorded_portmap(node: MetaNode) -> Iterator[Path]:
    """The reference portmap binary run as a delegate (not the in-tree one), behind a wrapper in a
    test bin dir that keeps each stdin it gets; the node's binDir is that dir."""
    with tempfile.TemporaryDirectory(prefix="mcpm-") as tmp:
        bin_dir, records = Path(tmp) / "bin", Path(tmp) / "records"
        bin_dir.mkdir()
        records.mkdir()
        wrapper = bin_dir / "portmap"
        wrapper.write_text(f'#!/bin/sh\nrec={records}/$$.json\ncat > "$rec"\nexec {CNI_PATH}/portmap < "$rec"\n')
        wrapper.chmod(0o755)
        node.invoker = Invoker(Registry(disabled=frozenset({"portmap"})))
        node.write_primary(bin_dir=str(bin_dir), extra=API)
        yield records


def host_ports(records: Path) -> set[int]:
    """Every hostPort any portmap call received."""
    out: set[int] = set()
    for path in records.iterdir():
        conf = json.loads(path.read_text())
        out |= {m["hostPort"] for m in (conf.get("runtimeConfig") or {}).get("portMappings", [])}
    return out


def test_a_binary_portmap_gets_no_port_outside_the_node_policy(node: MetaNode, recorded_portmap: Path):
    conflist = {"plugins": [
        {k: v for k, v in node.bridge_conf("pm", "br-pm", "10.89.39.0/24").items() if k not in ("cniVersion", "name")},
        # a NAD's own static runtimeConfig never reaches a delegate: only capabilities do
        {"type": "portmap", "capabilities": {"portMappings": True},
         "runtimeConfig": {"portMappings": [{"hostPort": 22, "containerPort": 80, "protocol": "tcp"}]}}]}
    nad(node, "pm", conflist)

    def asking(pod_name: str, port: int) -> Pod:
        sel = [{"name": "pm", "portMappings": [{"hostPort": port, "containerPort": 80, "protocol": "tcp"}]}]
        return node.pod(pod_name, annotations={NETWORKS: json.dumps(sel)})

    for name, port, setting in (("p22", 22, "hostPortRange"), ("kubelet", 10250, "reservedHostPorts")):
        refused(node, asking(name, port), "default/pm", f"hostPort {port}", setting)
    assert host_ports(recorded_portmap) == set()  # the refused ADDs ran no portmap at all
    ok = asking("ok", 30080)
    node.cni("ADD", ok)
    assert host_ports(recorded_portmap) == {30080}
    node.cni("DEL", ok)
    node.assert_clean(ok)
    assert host_ports(recorded_portmap) == {30080}


def test_a_masq_plugin_in_a_nad_obeys_allow_nad_ip_masq(node: MetaNode):
    """The in-tree masq plugin adds what ipMasq adds: the same node setting bounds both."""
    node.add_nad("mq", "br-mq", "10.89.43.0/24", extra_plugins=[{"type": "masq"}])
    ok = node.pod("a", annotations={NETWORKS: "mq"})
    node.cni("ADD", ok)  # allowed by default
    node.cni("DEL", ok)
    node.assert_clean(ok)
    allow(node, allowNadIpMasq=False)
    refused(node, node.pod("b", annotations={NETWORKS: "mq"}), "default/mq", "plugins[1].type", "allowNadIpMasq")


@pytest.mark.parametrize(("key", "value"), [("markMasqBit", 15), ("externalSetMarkChain", "KUBE-MARK-DROP")])
def test_a_nad_portmap_may_not_set_node_wide_marks(node: MetaNode, key: str, value: Any):
    """Bit 15 is kube-proxy's drop mark: in the shared SETMARK chain it would mark every pod's
    host-port traffic for dropping. The reference binary reads the same keys."""
    node.add_nad("pmk", "br-pmk", "10.89.44.0/24",
                 extra_plugins=[{"type": "portmap", "capabilities": {"portMappings": True}, key: value}])
    sel = [{"name": "pmk", "portMappings": [{"hostPort": 18082, "containerPort": 80, "protocol": "tcp"}]}]
    refused(node, node.pod(annotations={NETWORKS: json.dumps(sel)}), "default/pmk", f"plugins[1].{key}",
            "node-wide")


# ------------------------------------------------------------------------------ the node's addresses
def test_a_pod_may_not_claim_the_nodes_address_on_an_uplink(node: MetaNode):
    """macvlan on the uplink shares the node's L2: a pod holding the node's address (asked in
    the annotation, or static in the NAD) would take it over by ARP. Refused before any plugin."""
    uplink(node, "eth0")
    run("ip", "addr", "add", "192.168.77.11/24", "dev", "eth0", netns=node.name)
    static = {"type": "macvlan", "master": "eth0", "capabilities": {"ips": True}, "ipam": {"type": "static"}}
    nad(node, "lan", static)
    ask = [{"name": "lan", "ips": ["192.168.77.11/24"]}]
    refused(node, node.pod("a", annotations={NETWORKS: json.dumps(ask)}), "default/lan", "ips entry",
            "address of this node")
    nad(node, "lan-fixed", {**static, "ipam": {"type": "static", "addresses": [{"address": "192.168.77.11/24"}]}})
    refused(node, node.pod("b", annotations={NETWORKS: "lan-fixed"}), "default/lan-fixed",
            "ipam.addresses[0].address", "address of this node")
    ok = node.pod("c", annotations={NETWORKS: json.dumps([{"name": "lan", "ips": ["192.168.77.50/24"]}])})
    node.cni("ADD", ok)
    assert addresses("net1", ok.netns) == ["192.168.77.50/24"]
    node.cni("DEL", ok)
    node.assert_clean(ok)


# ------------------------------------------------------------------------------ routes on the node (ptp)
@pytest.mark.parametrize(("subnet", "gateway", "word"), [
    ("10.88.0.0/24", None, "ipam.ranges[0][0].subnet"),        # the primary's pod CIDR (on cni0)
    ("192.168.78.128/25", None, "ipam.ranges[0][0].subnet"),   # the node's LAN
    ("10.89.45.0/24", "192.168.78.11", "ipam.ranges[0][0].gateway")])  # the node's own address
def test_ptp_may_not_route_over_the_nodes_routes(node: MetaNode, subnet: str, gateway: str | None, word: str):
    """The reference ptp binary puts the gateway on the node and routes the pod's address
    through it, in the node's main table."""
    uplink(node, "eth0")
    run("ip", "addr", "add", "192.168.78.11/24", "dev", "eth0", netns=node.name)
    first = node.pod("first")
    node.cni("ADD", first)  # cni0 and its route to 10.88.0.0/24
    conf = {"type": "ptp", "ipam": ipam(node, subnet)}
    if gateway:
        conf["ipam"]["ranges"][0][0]["gateway"] = gateway
    nad(node, "pt", conf)
    routes_before = run("ip", "-4", "route", "show", "table", "all", netns=node.name).stdout
    refused(node, node.pod("p", annotations={NETWORKS: "pt"}), "default/pt", word, "overlaps the node's route")
    assert run("ip", "-4", "route", "show", "table", "all", netns=node.name).stdout == routes_before
    nad(node, "pt-ok", {"type": "ptp", "ipam": ipam(node, "10.89.46.0/24")})
    ok = node.pod("ok", annotations={NETWORKS: "pt-ok"})
    node.cni("ADD", ok)
    assert kind_of(ok.netns, "net1") == "veth"
    for done in (ok, first):
        node.cni("DEL", done)
    for done in (ok, first):
        node.assert_clean(done)


def test_ptp_with_an_ipam_metacni_cannot_read_needs_the_node_to_opt_in(node: MetaNode):
    nad(node, "pd", {"type": "ptp", "ipam": {"type": "dhcp"}})
    refused(node, node.pod("a", annotations={NETWORKS: "pd"}), "ipam.type", "'dhcp'", "nadPluginTypes")
    allow(node, nadPluginTypes=["ptp", "dhcp"])
    err = node.cni_error("ADD", node.pod("b", annotations={NETWORKS: "pd"}))
    assert "nadPluginTypes" not in err.details and "plugin 'ptp'" in err.details, err  # ran; no dhcp daemon here


def test_a_host_local_range_may_not_hand_out_the_nodes_address(node: MetaNode):
    """A NAD range over the node's LAN address (here rangeStart = rangeEnd = it: the first pod
    would get it) is refused; a range carved around it works."""
    uplink(node, "eth0")
    run("ip", "addr", "add", "192.168.79.11/24", "dev", "eth0", netns=node.name)
    lan = {"subnet": "192.168.79.0/24", "rangeStart": "192.168.79.11", "rangeEnd": "192.168.79.11"}
    nad(node, "grab", {"type": "macvlan", "master": "eth0", "ipam": {**ipam(node, ""), "ranges": [[lan]]}})
    refused(node, node.pod("a", annotations={NETWORKS: "grab"}), "default/grab", "ipam.ranges[0][0]",
            "192.168.79.11, an address of this node", "rangeStart/rangeEnd")
    carved = {**lan, "rangeStart": "192.168.79.100", "rangeEnd": "192.168.79.120"}
    nad(node, "carved", {"type": "macvlan", "master": "eth0", "ipam": {**ipam(node, ""), "ranges": [[carved]]}})
    ok = node.pod("b", annotations={NETWORKS: "carved"})
    node.cni("ADD", ok)
    assert addresses("net1", ok.netns) == ["192.168.79.100/24"]
    node.cni("DEL", ok)
    node.assert_clean(ok)


def test_an_ovs_nad_joins_only_shared_bridges(node: MetaNode):
    """ovs-cni attaches to an existing Open vSwitch bridge (OVN's br-int: every pod's L2). The
    plugin is not installed here: allowed, the ADD gets as far as looking it up."""
    nad(node, "ovs", {"type": "ovs", "bridge": "br-int"})
    refused(node, node.pod("a", annotations={NETWORKS: "ovs"}), "default/ovs", "bridge", "'br-int'", "sharedBridges")
    allow(node, sharedBridges=["br-int"])
    pod = node.pod("b", annotations={NETWORKS: "ovs"})
    err = node.cni_error("ADD", pod)
    assert "sharedBridges" not in err.details and "ovs" in err.details, err
    node.assert_clean(pod)
