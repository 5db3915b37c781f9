"""ADD/DEL lifecycle: parallel pods, exhaustion, duplicates, idempotent DEL, CHECK, config errors."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from metacni.sim.traffic import ping
from metacni.spec.errors import CNIError, Code
from metacni_testkit.netns import addresses, link_names, links, run


def _ports(node):
    return [ln["ifname"] for ln in links(node.name) if ln.get("master") == "cni0"]


def _veths(node):
    return sorted(n for n in link_names(node.name) if n.startswith("veth"))


def _lease_dir(node, conf) -> Path:
    return Path(node.data_dir, conf["name"])


def _lease_names(node, conf) -> list[str]:
    return sorted(p.name for p in _lease_dir(node, conf).iterdir())


def test_forty_parallel_adds_and_dels(node):
    conf = node.conf()
    pods = [node.pod().path for _ in range(40)]
    with ThreadPoolExecutor(max_workers=40) as pool:
        results = list(pool.map(lambda i: node.invoke("ADD", conf, pods[i], f"par-{i}"), range(40)))
    v4 = [next(ip.address for ip in r.ips if ":" not in ip.address) for r in results]
    v6 = [next(ip.address for ip in r.ips if ":" in ip.address) for r in results]
    assert len(set(v4)) == 40 and len(set(v6)) == 40
    files = _lease_names(node, conf)
    leases = [f for f in files if f[0].isdigit() or ":" in f]
    assert sorted(leases) == sorted([a.split("/")[0] for a in v4 + v6])
    for i, addr in enumerate(v4):
        assert (_lease_dir(node, conf) / addr.split("/")[0]).read_bytes() == f"par-{i}\r\neth0".encode()
    assert len(_ports(node)) == 40
    assert ping(pods[0], v4[39].split("/")[0])

    with ThreadPoolExecutor(max_workers=40) as pool:
        list(pool.map(lambda i: node.invoke("DEL", conf, pods[i], f"par-{i}"), range(40)))
    assert _lease_names(node, conf) == ["last_reserved_ip.0", "last_reserved_ip.1", "lock"]
    assert _ports(node) == []
    assert _veths(node) == []


def test_range_exhaustion_fails_cleanly(node):
    conf = node.conf(ranges=[[{"subnet": "10.78.0.0/29"}]])  # .2 .. .6 usable: 5 pods
    pods = [node.pod().path for _ in range(6)]
    for i in range(5):
        node.invoke("ADD", conf, pods[i], f"ex-{i}")
    before = _veths(node)
    with pytest.raises(CNIError) as err:
        node.invoke("ADD", conf, pods[5], "ex-5")
    assert "no IP addresses available" in str(err.value) and conf["name"] in str(err.value)
    assert _veths(node) == before
    assert "eth0" not in link_names(pods[5].rsplit("/", 1)[1])
    assert len([f for f in _lease_names(node, conf) if f[0].isdigit()]) == 5
    for i in range(5):
        node.invoke("DEL", conf, pods[i], f"ex-{i}")
    node.invoke("DEL", conf, pods[5], "ex-5")  # the runtime DELs a failed ADD too
    assert _veths(node) == []


def test_second_add_of_same_attachment_fails_without_damage(node):
    conf = node.conf()
    pod = node.pod().path
    first = node.invoke("ADD", conf, pod, "dup")
    pod_name = pod.rsplit("/", 1)[1]
    before = sorted(addresses("eth0", netns=pod_name))
    leases_before = _lease_names(node, conf)
    with pytest.raises(CNIError) as err:
        node.invoke("ADD", conf, pod, "dup")
    assert "already exists" in str(err.value)
    assert sorted(addresses("eth0", netns=pod_name)) == before
    assert _lease_names(node, conf) == leases_before
    assert _ports(node) == [first.interfaces[1].name]
    assert ping(pod, first.ips[0].gateway)
    node.invoke("CHECK", conf, pod, "dup", prev=first)
    node.invoke("DEL", conf, pod, "dup")


def test_del_is_idempotent(node, box):
    conf = node.conf()
    # 1. called three times
    pod = node.pod().path
    node.invoke("ADD", conf, pod, "del3")
    for _ in range(3):
        node.invoke("DEL", conf, pod, "del3")
    # 2. the veth is already gone
    pod2 = node.pod().path
    node.invoke("ADD", conf, pod2, "delveth")
    run("ip", "link", "del", "eth0", netns=pod2.rsplit("/", 1)[1])
    node.invoke("DEL", conf, pod2, "delveth")
    # 3. the namespace is already gone
    pod3 = node.pod().path
    node.invoke("ADD", conf, pod3, "delns")
    run("ip", "netns", "del", pod3.rsplit("/", 1)[1])
    node.invoke("DEL", conf, pod3, "delns")
    node.invoke("DEL", conf, "", "delns")  # and with no CNI_NETNS at all
    assert _veths(node) == []
    assert _lease_names(node, conf) == ["last_reserved_ip.0", "last_reserved_ip.1", "lock"]


def test_check_reports_what_differs(node):
    conf = node.conf()
    pod = node.pod().path
    res = node.invoke("ADD", conf, pod, "chk")
    node.invoke("CHECK", conf, pod, "chk", prev=res)
    v4 = next(ip.address for ip in res.ips if ":" not in ip.address)
    run("ip", "addr", "del", v4, "dev", "eth0", netns=pod.rsplit("/", 1)[1])
    with pytest.raises(CNIError) as err:
        node.invoke("CHECK", conf, pod, "chk", prev=res)
    assert f"address {v4} missing" in err.value.details
    assert "route 0.0.0.0/0 via" in err.value.details  # the default route went with the address
    node.invoke("DEL", conf, pod, "chk")


@pytest.mark.parametrize(("key", "value", "code", "field"), [
    ("ipMasqBackend", "ebtables", Code.INVALID_CONFIG, "ipMasqBackend"),
    ("hairpinMode", "yes", Code.INVALID_CONFIG, "hairpinMode"),
    ("vlan", 5000, Code.INVALID_CONFIG, "vlan"),
    ("mtu", -1, Code.INVALID_CONFIG, "mtu"),
    ("bridge", "a/b", Code.INVALID_CONFIG, "bridge"),
    ("macspoofchk", "yes", Code.INVALID_CONFIG, "macspoofchk"),  # accepted as a bool since it is implemented
])
def test_config_errors_name_field_and_network(node, key, value, code, field):
    conf = node.conf(**{key: value})
    pod = node.pod().path
    with pytest.raises(CNIError) as err:
        node.invoke("ADD", conf, pod, "bad")
    assert err.value.code == code
    assert field in err.value.details and conf["name"] in err.value.details
    assert _veths(node) == []


def test_hairpin_and_promisc_together_refused(node):
    conf = node.conf(hairpinMode=True, promiscMode=True)
    with pytest.raises(CNIError) as err:
        node.invoke("ADD", conf, node.pod().path, "hp")
    assert err.value.code == Code.INVALID_CONFIG and "hairpinMode" in err.value.details


def test_port_options_mtu_hairpin(node):
    conf = node.conf(mtu=1400, hairpinMode=True, isDefaultGateway=False,
                     ranges=[[{"subnet": "10.79.0.0/24"}]])
    pod = node.pod().path
    res = node.invoke("ADD", conf, pod, "opts")
    host = res.interfaces[1].name
    detail = run("ip", "-d", "-j", "link", "show", host, netns=node.name).stdout.replace(" ", "")
    assert '"mtu":1400' in detail and '"hairpin":true' in detail
    eth0 = [ln for ln in links(pod.rsplit("/", 1)[1]) if ln["ifname"] == "eth0"][0]
    assert eth0["mtu"] == 1400 and eth0["address"] == res.interfaces[2].mac
    node.invoke("DEL", conf, pod, "opts")


def test_l2_only_and_requested_mac(node):
    conf = node.conf(ipam={}, isDefaultGateway=False, runtimeConfig={"mac": "02:aa:bb:cc:dd:ee"},
                     capabilities={"mac": True})
    pod = node.pod().path
    res = node.invoke("ADD", conf, pod, "l2")
    assert res.ips == [] and res.interfaces[2].mac == "02:aa:bb:cc:dd:ee"
    eth0 = [ln for ln in links(pod.rsplit("/", 1)[1]) if ln["ifname"] == "eth0"][0]
    assert eth0["address"] == "02:aa:bb:cc:dd:ee" and "UP" in eth0["flags"]
    node.invoke("DEL", conf, pod, "l2")


def test_bridge_address_conflict_and_force(node):
    conf = node.conf(ranges=[[{"subnet": "10.80.0.0/24"}]])
    run("ip", "link", "add", "cni0", "type", "bridge", netns=node.name)
    run("ip", "addr", "add", "10.99.0.1/24", "dev", "cni0", netns=node.name)
    pod = node.pod().path
    with pytest.raises(CNIError) as err:
        node.invoke("ADD", conf, pod, "force")
    assert "forceAddress" in err.value.details
    assert _veths(node) == []
    assert not [f for f in _lease_names(node, conf) if f[0].isdigit()]  # lease rolled back
    node.invoke("DEL", conf, pod, "force")
    conf["forceAddress"] = True
    node.invoke("ADD", conf, pod, "force")
    assert addresses("cni0", netns=node.name) == ["10.80.0.1/24"]
    # round robin moves on past the address the rolled-back ADD had reserved
    assert addresses("eth0", netns=pod.rsplit("/", 1)[1]) == ["10.80.0.3/24"]
    node.invoke("DEL", conf, pod, "force")


def test_access_vlan(node):
    conf = node.conf(vlan=42, isDefaultGateway=False, ranges=[[{"subnet": "10.81.0.0/24"}]])
    pod = node.pod().path
    try:
        res = node.invoke("ADD", conf, pod, "vlan")
    except CNIError as exc:
        assert "CONFIG_BRIDGE_VLAN_FILTERING" in exc.details and _veths(node) == []
        pytest.skip("kernel without bridge VLAN filtering")
    vlans = run("bridge", "-j", "vlan", "show", "dev", res.interfaces[1].name, netns=node.name).stdout
    assert '"vlan":42' in vlans and '"vlan":1,' not in vlans
    node.invoke("DEL", conf, pod, "vlan")


@pytest.mark.parametrize("backend", ["nftables", "iptables"])
def test_ip_masq_rules_follow_the_attachment(node, backend):
    """ipMasq installs masquerade rules keyed by the attachment; DEL finds them with the pod gone."""
    conf = node.conf(ipMasq=True, ipMasqBackend=backend)
    pod = node.pod().path
    node.invoke("ADD", conf, pod, "masq1")

    def ruleset() -> str:
        if backend == "nftables":
            return run("nft", "list", "ruleset", netns=node.name).stdout
        return run("iptables-legacy-save", "-t", "nat", netns=node.name).stdout

    assert "MASQUERADE" in ruleset().upper()
    run("ip", "netns", "del", pod.rsplit("/", 1)[1])  # the runtime removed the netns first
    node.invoke("DEL", conf, pod, "masq1")
    assert "MASQUERADE" not in ruleset().upper()
    assert _veths(node) == []
