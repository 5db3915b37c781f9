"""host-local against the reference binary on a shared data dir, plus its own verbs."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from metacni.engine.invoke import Invoker
from metacni.engine.registry import Registry
from metacni.engine.request import Invocation
from metacni.spec.args import CniArgs
from metacni.spec.errors import CNIError, Code

OURS = Invoker(Registry())
REF = Invoker(Registry(disabled=frozenset({"host-local"})))
NET = "hlnet"


def conf(data_dir: str, name: str = NET, version: str = "1.0.0", **ipam: Any) -> dict[str, Any]:
    ipam.setdefault("ranges", [[{"subnet": "10.60.0.0/28"}], [{"subnet": "fd60::/64"}]])
    return {"cniVersion": version, "name": name, "type": "host-local",
            "ipam": {"type": "host-local", "dataDir": data_dir, **ipam}}


def call(invoker: Invoker, command: str, cfg: dict[str, Any], cid: str, ifname: str = "eth0",
         args: str = "") -> Any:
    inv = Invocation(command=command, container_id=cid, netns="/nonexistent", ifname=ifname,
                     args=CniArgs.parse(args), cni_path=("/usr/lib/cni",))
    return invoker.invoke("host-local", cfg, inv)


def addrs(result: Any) -> list[str]:
    return [ip.address for ip in result.ips]


def listing(path: str) -> list[str]:
    return sorted(os.listdir(path))


def lease_owners(path: Any) -> list[bytes]:
    return [(path / n).read_bytes() for n in listing(path) if n[0].isdigit() or ":" in n]


def test_reference_and_ours_share_a_data_dir(tmp_path):
    cfg = conf(str(tmp_path))
    a = call(REF, "ADD", cfg, "ref-1")
    b = call(OURS, "ADD", cfg, "ours-1")
    c = call(REF, "ADD", cfg, "ref-2")
    d = call(OURS, "ADD", cfg, "ours-2")
    assert addrs(a) == ["10.60.0.2/28", "fd60::2/64"]
    assert addrs(b) == ["10.60.0.3/28", "fd60::3/64"]  # ours continued the reference's round robin
    assert addrs(c) == ["10.60.0.4/28", "fd60::4/64"]  # and the reference continued ours
    assert addrs(d) == ["10.60.0.5/28", "fd60::5/64"]
    assert a.to_wire() == {**b.to_wire(), "ips": a.to_wire()["ips"]}  # same shape, gateways, routes
    store = tmp_path / NET
    for name, cid in (("10.60.0.3", "ours-1"), ("fd60::5", "ours-2"), ("10.60.0.4", "ref-2")):
        assert (store / name).read_bytes() == f"{cid}\r\neth0".encode()
    assert (store / "last_reserved_ip.0").read_bytes() == b"10.60.0.5"
    # Release across implementations: each one frees the other's leases.
    call(OURS, "DEL", cfg, "ref-1")
    call(REF, "DEL", cfg, "ours-1")
    call(OURS, "CHECK", cfg, "ref-2")
    call(REF, "CHECK", cfg, "ours-2")
    assert listing(store) == ["10.60.0.4", "10.60.0.5", "fd60::4", "fd60::5",
                              "last_reserved_ip.0", "last_reserved_ip.1", "lock"]
    # A lease the reference holds is never handed out again by ours, and vice versa.
    e = call(OURS, "ADD", cfg, "ours-3")
    f = call(REF, "ADD", cfg, "ref-3")
    taken = {"10.60.0.4/28", "10.60.0.5/28"}
    assert not taken & (set(addrs(e)) | set(addrs(f)))
    assert set(addrs(e)).isdisjoint(addrs(f))


def test_concurrent_with_the_reference_binary(tmp_path):
    cfg = conf(str(tmp_path), ranges=[[{"subnet": "10.61.0.0/24"}]])

    def one(i: int) -> str:
        return addrs(call(REF if i % 2 else OURS, "ADD", cfg, f"cc-{i}"))[0]

    with ThreadPoolExecutor(max_workers=16) as pool:
        got = list(pool.map(one, range(32)))
    assert len(set(got)) == 32
    leases = [n for n in listing(tmp_path / NET) if n[0].isdigit()]
    assert sorted(leases) == sorted(g.split("/")[0] for g in got)


def test_requested_addresses(tmp_path):
    cfg = conf(str(tmp_path))
    r = call(OURS, "ADD", cfg, "want", args="IgnoreUnknown=1;IP=10.60.0.9,fd60::99")
    assert addrs(r) == ["10.60.0.9/28", "fd60::99/64"]
    cfg_rc = conf(str(tmp_path))
    cfg_rc["runtimeConfig"] = {"ips": ["10.60.0.10/28"]}
    assert addrs(call(OURS, "ADD", cfg_rc, "want-rc"))[0] == "10.60.0.10/28"
    with pytest.raises(CNIError) as err:
        call(OURS, "ADD", cfg, "want-2", args="IP=10.60.0.9")
    assert "10.60.0.9" in err.value.details
    with pytest.raises(CNIError) as err:
        call(OURS, "ADD", cfg, "want-3", args="IP=10.60.0.1")
    assert err.value.code == Code.INVALID_CONFIG and "gateway" in err.value.details
    with pytest.raises(CNIError) as err:
        call(OURS, "ADD", cfg, "want-4", args="IP=192.168.1.1")
    assert err.value.code == Code.INVALID_CONFIG
    # Failed requests leave nothing behind.
    assert sorted(lease_owners(tmp_path / NET)) == sorted([b"want\r\neth0"] * 2 + [b"want-rc\r\neth0"] * 2)


def test_exhaustion_and_duplicates(tmp_path):
    cfg = conf(str(tmp_path), ranges=[[{"subnet": "10.62.0.0/29"}]])
    for i in range(5):
        call(OURS, "ADD", cfg, f"ex-{i}")
    with pytest.raises(CNIError) as err:
        call(OURS, "ADD", cfg, "ex-5")
    assert "no IP addresses available in range set 10.62.0.1-10.62.0.6" in err.value.details
    assert NET in err.value.details
    with pytest.raises(CNIError) as err:
        call(OURS, "ADD", cfg, "ex-0")
    assert "duplicate allocation" in err.value.details
    assert (tmp_path / NET / "10.62.0.2").read_bytes() == b"ex-0\r\neth0"  # untouched


@pytest.mark.parametrize("name", ["..", "../escape", "a/b", "/abs", ".hidden"])
def test_network_names_that_escape_are_refused_before_writing(tmp_path, name):
    data = tmp_path / "data"
    for verb in ("ADD", "DEL", "CHECK"):
        with pytest.raises(CNIError) as err:
            call(OURS, verb, conf(str(data), name=name), "x")
        assert err.value.code == Code.INVALID_CONFIG
    assert not data.exists()


def test_del_release_and_gc(tmp_path):
    cfg = conf(str(tmp_path), version="1.1.0")
    for cid, ifname in (("g1", "eth0"), ("g1", "net1"), ("g2", "eth0"), ("g3", "eth0")):
        call(OURS, "ADD", cfg, cid, ifname=ifname)
    (tmp_path / NET / "10.60.0.14").write_text("legacy-id")  # a pre-ifname lease file
    call(OURS, "DEL", cfg, "g3")
    call(OURS, "DEL", cfg, "g3")  # idempotent
    gc = dict(cfg, **{"cni.dev/valid-attachments": [{"containerID": "g1", "ifname": "net1"}]})
    OURS.invoke("host-local", gc, Invocation(command="GC", cni_path=("/usr/lib/cni",)))
    assert set(lease_owners(tmp_path / NET)) == {b"g1\r\nnet1"}
    with pytest.raises(CNIError):
        call(OURS, "CHECK", cfg, "g2")
    call(OURS, "DEL", conf(str(tmp_path / "never-used")), "nobody")
    assert not (tmp_path / "never-used").exists()


def test_config_errors_name_field_and_network(tmp_path):
    for ipam, field in (({"ranges": [[{"subnet": "10.0.0.1/24"}]]}, "ipam.ranges[0][0].subnet"),
                        ({"ranges": []}, "no IP ranges"),
                        ({"ranges": [[{"subnet": "10.0.0.0/24"}], [{"subnet": "10.0.0.0/25"}]]}, "overlaps"),
                        ({"routes": [{"dst": "nope"}]}, "ipam.routes")):
        with pytest.raises(CNIError) as err:
            call(OURS, "ADD", conf(str(tmp_path), **ipam), "x")
        assert err.value.code == Code.INVALID_CONFIG
        assert field in err.value.details and NET in err.value.details


def test_resolv_conf_and_legacy_subnet(tmp_path):
    resolv = tmp_path / "resolv.conf"
    resolv.write_text("nameserver 10.0.0.53\nsearch svc.example example\noptions ndots:5\n")
    cfg = conf(str(tmp_path), ranges=None, subnet="10.63.0.0/24", rangeStart="10.63.0.100",
               gateway="10.63.0.254", resolvConf=str(resolv), routes=[{"dst": "0.0.0.0/0"}])
    cfg["ipam"].pop("ranges")
    ours = call(OURS, "ADD", cfg, "r1").to_wire()
    ref = call(REF, "ADD", cfg, "r2").to_wire()
    assert ours["ips"] == [{"address": "10.63.0.100/24", "gateway": "10.63.0.254"}]
    assert ref["ips"] == [{"address": "10.63.0.101/24", "gateway": "10.63.0.254"}]
    assert {k: v for k, v in ours.items() if k != "ips"} == {k: v for k, v in ref.items() if k != "ips"}


def test_last_reserved_overwritten_in_place_holds_exactly_the_address(tmp_path):
    """Overwritten without a rename (see Store.set_last_reserved): a shorter address must not
    leave the tail of a longer one behind, or the reference would fail to parse the file."""
    import ipaddress

    from metacni_plugins.host_local.store import Store

    store = Store(str(tmp_path), NET)
    with store.locked():
        for ip in ("10.60.0.100", "10.60.0.9", "fd60::abcd", "10.60.0.10"):
            store.set_last_reserved(0, ipaddress.ip_address(ip))
            assert (tmp_path / NET / "last_reserved_ip.0").read_bytes() == ip.encode()
            assert store.last_reserved(0) == ipaddress.ip_address(ip)
