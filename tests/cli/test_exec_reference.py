"""The Debian reference plugins driven through ``metacni exec``, and libcni cache interop.

Everything runs inside a test-made "node" namespace (``ip netns exec``), so the bridge, the
host veths and portmap's iptables rules never touch the host.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from metacni_testkit import golibcni
from metacni_testkit.netns import Sandbox, addresses, link_names, netns_path, run, tag

REFERENCE = Path("/usr/lib/cni")
pytestmark = pytest.mark.skipif(not (REFERENCE / "bridge").exists(), reason="needs containernetworking-plugins")
METACNI = shutil.which("metacni") or "metacni"


def conflist(tmp: Path, version: str = "1.0.0", portmap: bool = True) -> Path:
    net = tag("ref")
    data = {
        "cniVersion": version,
        "name": net,
        "plugins": [
            {"type": "bridge", "bridge": "cni0", "isGateway": True, "ipMasq": False,
             "ipam": {"type": "host-local", "dataDir": str(tmp / "ipam"),
                      "ranges": [[{"subnet": "10.77.0.0/24"}]], "routes": [{"dst": "0.0.0.0/0"}]}},
        ] + ([{"type": "portmap", "capabilities": {"portMappings": True}}] if portmap else []),
    }
    path = tmp / f"10-{net}.conflist"
    path.write_text(json.dumps(data))
    return path


def metacni_exec(node: str, *argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = run("ip", "netns", "exec", node, METACNI, "exec", *argv, check=False)
    if check and proc.returncode != 0:
        raise AssertionError(f"metacni exec {argv} failed: {proc.stdout} {proc.stderr}")
    return proc


def ip_files(tmp: Path, network: str) -> list[str]:
    d = tmp / "ipam" / network
    return sorted(p.name for p in d.iterdir()) if d.exists() else []


def veths(node: str) -> set[str]:
    return {n for n in link_names(node) if n.startswith("veth")}


def common(tmp: Path, cid: str) -> list[str]:
    return ["--cni-path", str(REFERENCE), "--cache-dir", str(tmp / "cache"), "--container-id", cid, "--exec-all"]


@pytest.mark.parametrize("portmap", [True, False], ids=["bridge+portmap", "bridge"])
def test_reference_chain_add_check_del(box: Sandbox, tmp_path: Path, portmap: bool) -> None:
    node, pod = box.netns("node"), box.netns("pod")
    conf = conflist(tmp_path, portmap=portmap)
    network = json.loads(conf.read_text())["name"]
    cid = tag("c", 12)
    mappings = json.dumps({"portMappings": [{"hostPort": 18080, "containerPort": 80, "protocol": "tcp"}]})
    out = metacni_exec(node, "add", str(conf), netns_path(pod), *common(tmp_path, cid), "--runtime-config", mappings)
    result = json.loads(out.stdout)
    assert result["cniVersion"] == "1.0.0"
    assert result["ips"][0]["address"].startswith("10.77.0.")
    assert addresses("eth0", pod) == [result["ips"][0]["address"]]
    assert len(veths(node)) == 1
    assert ("CNI-DN-" in run("ip", "netns", "exec", node, "iptables-save", "-t", "nat").stdout) == portmap
    cache_file = tmp_path / "cache" / "results" / f"{network}-{cid}-eth0"
    assert cache_file.exists()

    check = metacni_exec(node, "check", str(conf), netns_path(pod), *common(tmp_path, cid),
                         "--runtime-config", mappings, check=not portmap)
    if portmap:
        # The reference portmap's CHECK fails on IPv4-only pods (it looks for an IPv6 chain);
        # the error must come through intact and name the plugin. Ours does not have this bug.
        err = json.loads(check.stdout)
        assert check.returncode == 1 and "ipv6" in err["msg"] and "portmap" in err["details"]

    # DEL without runtime arguments: the cached capability args still let portmap clean up.
    metacni_exec(node, "del", str(conf), netns_path(pod), *common(tmp_path, cid))
    assert veths(node) == set()
    assert "eth0" not in link_names(pod)
    assert [f for f in ip_files(tmp_path, network) if f[0].isdigit()] == []
    assert not cache_file.exists()
    assert "CNI-DN-" not in run("ip", "netns", "exec", node, "iptables-save", "-t", "nat").stdout
    metacni_exec(node, "del", str(conf), netns_path(pod), *common(tmp_path, cid))  # second DEL succeeds


def test_check_is_refused_below_040(box: Sandbox, tmp_path: Path) -> None:
    node = box.netns("node")
    conf = conflist(tmp_path, "0.3.1")
    proc = metacni_exec(node, "check", str(conf), "/run/netns/none", *common(tmp_path, "c1"), check=False)
    assert proc.returncode == 1
    err = json.loads(proc.stdout)
    assert err["code"] == 1 and "CHECK" in err["msg"]


@pytest.mark.skipif(not golibcni.available(), reason="needs golang-go and golang-github-appc-cni-dev")
@pytest.mark.parametrize("adder", ["metacni", "libcni"])
def test_cache_is_shared_with_libcni(box: Sandbox, tmp_path: Path, adder: str) -> None:
    """What one runtime ADDs, the other can DEL from the same cache dir, and vice versa."""
    tool = str(golibcni.build())
    node, pod = box.netns("node"), box.netns("pod")
    conf = conflist(tmp_path)
    network = json.loads(conf.read_text())["name"]
    cid = tag("c", 12)
    caps = json.dumps({"portMappings": [{"hostPort": 18081, "containerPort": 80, "protocol": "tcp"}]})
    env_prefix = ["env", f"CNI_PATH={REFERENCE}", f"CNI_CACHE_DIR={tmp_path / 'cache'}", f"CAP_ARGS={caps}"]
    if adder == "metacni":
        metacni_exec(node, "add", str(conf), netns_path(pod), *common(tmp_path, cid), "--runtime-config", caps)
    else:
        run("ip", "netns", "exec", node, *env_prefix, tool, "add", str(conf), netns_path(pod), cid, "eth0")
    cache_file = tmp_path / "cache" / "results" / f"{network}-{cid}-eth0"
    entry = json.loads(cache_file.read_text())
    assert entry["kind"] == "cniCacheV1"
    assert {"containerId", "config", "ifName", "networkName", "result", "capabilityArgs"} <= set(entry)
    # Newer libcni also records the netns (Debian's 1.1.x does not); we always do.
    assert adder == "libcni" or entry["netns"] == netns_path(pod)
    assert entry["containerId"] == cid and entry["ifName"] == "eth0" and entry["networkName"] == network
    assert json.loads(__import__("base64").b64decode(entry["config"])) == json.loads(conf.read_text())
    assert oct(cache_file.stat().st_mode & 0o777) == "0o600"
    assert oct(cache_file.parent.stat().st_mode & 0o777) == "0o700"

    if adder == "metacni":
        run("ip", "netns", "exec", node, *env_prefix, tool, "del", str(conf), netns_path(pod), cid, "eth0")
    else:
        metacni_exec(node, "del", str(conf), netns_path(pod), *common(tmp_path, cid))
    assert not cache_file.exists()
    assert veths(node) == set()
    assert [f for f in ip_files(tmp_path, network) if f[0].isdigit()] == []
    assert "CNI-DN-" not in run("ip", "netns", "exec", node, "iptables-save", "-t", "nat").stdout


def test_exec_needs_no_root_for_usage_errors() -> None:
    proc = subprocess.run([METACNI, "exec", "add", "/nonexistent.conflist", ""], capture_output=True, text=True,
                          env=dict(os.environ), timeout=60)
    assert proc.returncode == 1
    err = json.loads(proc.stdout)
    assert err["code"] == 4 and "NETNS" in err["details"]
