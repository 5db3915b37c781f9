"""tuning-py in real namespaces: alone, chained after bridge in each result family, rolled
back, and exec'd as a CNI binary (metacni under the type's name) by the chain runner.

Each test owns a node namespace (the chain runs with the thread entered into it) and pod
namespaces, all from ``box`` so they go away even when a test fails.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from metacni.engine.cache import ResultCache
from metacni.engine.chain import ChainRunner, RuntimeConf
from metacni.engine.invoke import Invoker
from metacni.engine.registry import Registry
from metacni.engine.request import Invocation
from metacni.kernel.netns import enter
from metacni.plugin import CniArgs, CNIError, Code, Result
from metacni.spec.config import network_list_from_bytes
from metacni_testkit.netns import link_names, links, netns_path, run, tag

pytest.importorskip("metacni_tuning.plugin", reason="pip install -e docs/examples/metacni-tuning")

MAC = "02:42:ac:11:00:07"


def link(ifname: str, netns: str) -> dict:
    (entry,) = [ln for ln in links(netns) if ln["ifname"] == ifname]
    return entry


def read_sysctl(netns: str, *parts: str) -> str:
    return run("cat", "/proc/sys/" + "/".join(parts), netns=netns).stdout.strip()


@pytest.fixture
def node(box):
    return box.netns("mctun-node")


@pytest.fixture
def pod(box):
    """A pod namespace with eth0 (one end of a veth pair), as an interface plugin would leave it."""
    name = box.netns("mctun-pod")
    run("ip", "link", "add", "eth0", "type", "veth", "peer", "name", "peer0", netns=name)
    run("ip", "link", "set", "eth0", "up", netns=name)
    return name


def prev_for(pod: str, version: str) -> Result:
    return Result.model_validate({"cniVersion": version,
                                  "interfaces": [{"name": "eth0", "sandbox": netns_path(pod), "mtu": 1500}],
                                  "ips": [{"address": "10.9.0.2/24", "interface": 0}]})


def test_standalone_add_check_del_restores(node, pod, tmp_path):
    conf = {"cniVersion": "1.0.0", "name": "tnet", "type": "tuning-py", "mtu": 1400, "mac": MAC,
            "sysctl": {"net.ipv4.conf.IFNAME.arp_notify": "1"}, "allowedSysctls": ["net.core.somaxconn"],
            "dataDir": str(tmp_path / "state")}
    before = link("eth0", pod)
    somaxconn = read_sysctl(pod, "net", "core", "somaxconn")
    arp_notify = read_sysctl(pod, "net", "ipv4", "conf", "eth0", "arp_notify")
    assert (somaxconn, arp_notify) != ("777", "1")
    invoker = Invoker(Registry())

    def inv(command: str) -> Invocation:
        return Invocation(command=command, container_id="c1", netns=netns_path(pod), ifname="eth0",
                          args=CniArgs.parse("SYSCTL.net.core.somaxconn=777"))

    with enter(netns_path(node)):
        out = invoker.invoke("tuning-py", conf, inv("ADD"), prev_for(pod, "1.0.0"))
        assert out is not None
        assert (out.interfaces[0].mac, out.interfaces[0].mtu) == (MAC, 1400)
        now = link("eth0", pod)
        assert (now["address"], now["mtu"]) == (MAC, 1400)
        assert read_sysctl(pod, "net", "ipv4", "conf", "eth0", "arp_notify") == "1"
        assert read_sysctl(pod, "net", "core", "somaxconn") == "777"
        invoker.invoke("tuning-py", conf, inv("CHECK"), out)

        run("ip", "link", "set", "eth0", "mtu", "1300", netns=pod)
        with pytest.raises(CNIError) as err:
            invoker.invoke("tuning-py", conf, inv("CHECK"), out)
        assert "mtu is 1300, expected 1400" in err.value.details

        invoker.invoke("tuning-py", conf, inv("DEL"), out)
        invoker.invoke("tuning-py", conf, inv("DEL"), None)  # idempotent, even without prevResult
    after = link("eth0", pod)
    assert (after["address"], after["mtu"]) == (before["address"], before["mtu"])
    assert read_sysctl(pod, "net", "ipv4", "conf", "eth0", "arp_notify") == arp_notify
    assert read_sysctl(pod, "net", "core", "somaxconn") == somaxconn
    assert not list((tmp_path / "state").rglob("*.json"))


def test_disallowed_sysctl_changes_nothing(node, pod, tmp_path):
    conf = {"cniVersion": "1.0.0", "name": "tnet", "type": "tuning-py", "mtu": 1400,
            "dataDir": str(tmp_path / "state")}
    inv = Invocation(command="ADD", container_id="c1", netns=netns_path(pod), ifname="eth0",
                     args=CniArgs.parse("SYSCTL.net.core.somaxconn=5"))
    with enter(netns_path(node)), pytest.raises(CNIError) as err:
        Invoker(Registry()).invoke("tuning-py", conf, inv, prev_for(pod, "1.0.0"))
    assert err.value.code == Code.INVALID_CONFIG
    assert "net.core.somaxconn" in err.value.details
    assert link("eth0", pod)["mtu"] == 1500
    assert not (tmp_path / "state").exists()


def test_missing_interface_is_an_error_and_leaves_no_record(node, box, tmp_path):
    empty_pod = box.netns("mctun-pod")
    conf = {"cniVersion": "1.0.0", "name": "tnet", "type": "tuning-py", "mtu": 1400,
            "dataDir": str(tmp_path / "state")}
    inv = Invocation(command="ADD", container_id="c1", netns=netns_path(empty_pod), ifname="eth0")
    with enter(netns_path(node)), pytest.raises(CNIError) as err:
        Invoker(Registry()).invoke("tuning-py", conf, inv, prev_for(empty_pod, "1.0.0"))
    assert err.value.code == Code.INVALID_ENVIRONMENT and "'eth0'" in err.value.details
    assert not list(tmp_path.rglob("*.json"))


def conflist(version: str, tmp_path: Path, **tuning: object) -> bytes:
    return json.dumps({
        "cniVersion": version, "name": tag("tnet"), "plugins": [
            {"type": "bridge", "bridge": "tb0", "isGateway": True,
             "ipam": {"type": "host-local", "dataDir": str(tmp_path / "ipam"),
                      "ranges": [[{"subnet": "10.66.0.0/24"}]]}},
            {"type": "tuning-py", "mtu": 1380, "dataDir": str(tmp_path / "state"), **tuning},
        ]}).encode()


@pytest.mark.parametrize("version", ["0.4.0", "1.0.0"])
def test_chained_after_bridge_gets_prev_result_in_the_list_family(node, box, tmp_path, version):
    net = network_list_from_bytes(conflist(version, tmp_path, mac=MAC,
                                           capabilities={"mac": True}), is_list=True)
    registry = Registry()
    seen: list[Result | None] = []

    def before(hook_name, hook_impls, kwargs):
        if hook_name == "cni_add" and kwargs["request"].plugin_type == "tuning-py":
            seen.append(kwargs["request"].prev_result)

    registry.pm.add_hookcall_monitoring(before, lambda *a: None)
    runner = ChainRunner(Invoker(registry), ["/usr/lib/cni"], ResultCache(str(tmp_path / "cache")))
    pod = box.netns("mctun-pod")
    rt = RuntimeConf(container_id="c-" + version.replace(".", ""), netns=netns_path(pod), ifname="eth0",
                     capability_args={"mac": "02:42:ac:11:00:08"})
    with enter(netns_path(node)):
        result = runner.add(net, rt)
        (prev,) = seen
        assert prev is not None and prev.cni_version == version
        wire_prev = prev.to_wire()
        assert ("version" in wire_prev["ips"][0]) == (version == "0.4.0")  # the 0.4.0 family marks IPs
        if version == "0.4.0":
            assert all("mtu" not in i for i in wire_prev["interfaces"])

        wire = result.to_wire()
        assert wire["cniVersion"] == version
        pod_iface = next(i for i in wire["interfaces"] if i.get("sandbox") == netns_path(pod))
        assert pod_iface["mac"] == "02:42:ac:11:00:08"  # runtimeConfig mac beats the config's
        assert pod_iface.get("mtu") == (1380 if version == "1.0.0" else None)
        now = link("eth0", pod)
        assert (now["address"], now["mtu"]) == ("02:42:ac:11:00:08", 1380)

        runner.check(net, rt)
        runner.delete(net, rt)
    assert "eth0" not in link_names(pod)
    assert not [ln for ln in links(node) if ln.get("master") == "tb0"]
    assert not list((tmp_path / "state").rglob("*.json"))


def test_failure_in_tuning_rolls_back_the_bridge(node, box, tmp_path):
    net = network_list_from_bytes(conflist("1.0.0", tmp_path), is_list=True)
    runner = ChainRunner(Invoker(Registry()), ["/usr/lib/cni"], ResultCache(str(tmp_path / "cache")))
    pod = box.netns("mctun-pod")
    rt = RuntimeConf(container_id="c1", netns=netns_path(pod), ifname="eth0",
                     args=CniArgs.parse("SYSCTL.net.core.somaxconn=5"))
    with enter(netns_path(node)), pytest.raises(CNIError) as err:
        runner.add(net, rt)
    assert err.value.code == Code.INVALID_CONFIG and "tuning-py" in err.value.details
    assert "eth0" not in link_names(pod)
    assert not [ln for ln in links(node) if ln.get("master") == "tb0"]
    assert not [p for p in (tmp_path / "ipam").rglob("*") if p.is_file() and p.name[0].isdigit()]


def test_exec_as_cni_binary_after_in_process_bridge(node, box, tmp_path):
    """A runtime that execs ``tuning-py`` from CNI_PATH gets metacni's skel, stdout clean."""
    metacni = shutil.which("metacni") or pytest.skip("metacni console script not on PATH")
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "tuning-py").symlink_to(metacni)  # how a node deploys it: a link named after the type
    conf = tmp_path / "net.conflist"
    conf.write_bytes(conflist("0.4.0", tmp_path))
    pod = box.netns("mctun-pod")
    base = ["ip", "netns", "exec", node, metacni, "exec"]
    common = [str(conf), netns_path(pod), "--cni-path", f"{bindir}:/usr/lib/cni", "--cache-dir",
              str(tmp_path / "cache"), "--exec-type", "tuning-py"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("CNI_")}
    add = subprocess.run([*base, "add", *common], capture_output=True, text=True, env=env, timeout=60)
    assert add.returncode == 0, add.stderr + add.stdout
    out = json.loads(add.stdout)
    assert out["cniVersion"] == "0.4.0"
    assert link("eth0", pod)["mtu"] == 1380
    delete = subprocess.run([*base, "del", *common], capture_output=True, text=True, env=env, timeout=60)
    assert delete.returncode == 0, delete.stderr + delete.stdout
    assert "eth0" not in link_names(pod)
