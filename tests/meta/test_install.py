"""00-metacni.conf generation and binary installation (no root, no API)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from metacni.meta.install import NoPrimaryNetwork, install_binary, installed_options, node_config, write_node_config
from metacni.spec.errors import CNIError


def _write(path, data):
    path.write_text(json.dumps(data))
    return path


PRIMARY = {"cniVersion": "1.0.0", "name": "pri", "plugins": [
    {"type": "bridge", "capabilities": {"mac": True, "ips": False}},
    {"type": "portmap", "capabilities": {"portMappings": True}},
]}


def test_picks_first_other_config_with_capability_union(tmp_path):
    _write(tmp_path / "20-other.conflist", dict(PRIMARY, name="other"))
    _write(tmp_path / "10-pri.conflist", PRIMARY)
    path = write_node_config(tmp_path, cni_dir="/var/lib/cni/metacni", kubeconfig="/etc/kc")
    conf = json.loads(path.read_text())
    assert path.name == "00-metacni.conf"
    assert conf["type"] == "metacni" and conf["cniVersion"] == "1.0.0"
    assert conf["clusterNetwork"] == str(tmp_path / "10-pri.conflist")
    assert conf["capabilities"] == {"io.kubernetes.cri.pod-annotations": True, "mac": True, "portMappings": True}
    assert conf["kubeconfig"] == "/etc/kc"


def test_never_selects_itself_or_another_metacni_config(tmp_path):
    _write(tmp_path / "00-metacni.conf", {"cniVersion": "1.0.0", "name": "m", "type": "metacni"})
    _write(tmp_path / "01-wrapped.conflist", {"cniVersion": "1.0.0", "name": "w", "plugins": [{"type": "metacni"}]})
    _write(tmp_path / "10-pri.conflist", PRIMARY)
    conf = node_config(tmp_path)
    assert conf["clusterNetwork"].endswith("10-pri.conflist")
    with pytest.raises(CNIError):
        node_config(tmp_path, primary=tmp_path / "00-metacni.conf")


def test_no_primary_writes_nothing_and_keeps_existing(tmp_path):
    with pytest.raises(NoPrimaryNetwork):
        write_node_config(tmp_path)
    assert not (tmp_path / "00-metacni.conf").exists()
    _write(tmp_path / "10-pri.conflist", PRIMARY)
    path = write_node_config(tmp_path)
    before = path.read_bytes()
    (tmp_path / "10-pri.conflist").write_text("{ truncated")  # primary briefly broken (Multus #1155)
    with pytest.raises(NoPrimaryNetwork) as info:
        write_node_config(tmp_path)
    assert "10-pri.conflist" in info.value.details
    assert path.read_bytes() == before and before.strip()


def test_unchanged_content_is_not_rewritten(tmp_path):
    _write(tmp_path / "10-pri.conflist", PRIMARY)
    path = write_node_config(tmp_path)
    inode = path.stat().st_ino
    write_node_config(tmp_path)
    assert path.stat().st_ino == inode
    _write(tmp_path / "05-new.conflist", dict(PRIMARY, name="new"))  # a new, earlier primary is picked up
    write_node_config(tmp_path)
    assert json.loads(path.read_text())["clusterNetwork"].endswith("05-new.conflist")


def test_host_conf_dir_and_version_rules(tmp_path):
    _write(tmp_path / "10-old.conf", {"cniVersion": "0.3.1", "name": "old", "type": "bridge"})
    with pytest.raises(CNIError) as info:
        node_config(tmp_path, cni_version="1.0.0")
    assert "CHECK" in info.value.details
    conf = node_config(tmp_path, host_conf_dir="/etc/cni/net.d")
    assert conf["clusterNetwork"] == "/etc/cni/net.d/10-old.conf" and conf["cniVersion"] == "0.3.1"
    assert conf["confDir"] == "/etc/cni/net.d"


def _holds_open(pid, path) -> bool:
    try:
        return any(os.readlink(f"/proc/{pid}/fd/{fd}") == str(path) for fd in os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return False


def test_binary_replaced_while_running_no_text_file_busy(tmp_path):
    src = tmp_path / "src"
    src.write_text("#!/bin/sh\nread line\necho v1\n")
    target = install_binary(src, tmp_path / "bin")
    running = subprocess.Popen([str(target)], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        # The shell opens the script by path after exec: wait until it holds it open.
        deadline = time.monotonic() + 10
        while not _holds_open(running.pid, target):
            assert time.monotonic() < deadline, "the script never opened itself"
            time.sleep(0.005)
        src.write_text("#!/bin/sh\necho v2\n")
        install_binary(src, tmp_path / "bin")  # would be ETXTBSY with an in-place copy of a binary
        assert subprocess.run([str(target)], capture_output=True, text=True).stdout == "v2\n"
    finally:
        out, _ = running.communicate(b"\n", timeout=10)
    assert out == b"v1\n"
    assert os.access(target, os.X_OK)
    assert sorted(p.name for p in (tmp_path / "bin").iterdir()) == ["metacni"]


def test_install_binary_over_running_elf(tmp_path):
    """A real executable (ELF) that is being executed: the case Multus #1221 hits."""
    sleeper = "/bin/sleep"
    target = install_binary(sleeper, tmp_path)
    proc = subprocess.Popen([str(target), "30"])
    try:
        deadline = time.monotonic() + 10
        while not os.path.exists(f"/proc/{proc.pid}/exe") and time.monotonic() < deadline:
            time.sleep(0.01)
        install_binary(sleeper, tmp_path)
        assert proc.poll() is None  # the running copy is untouched
    finally:
        proc.kill()
        proc.wait()


def test_cli_install(tmp_path):
    _write(tmp_path / "10-pri.conflist", PRIMARY)
    src = tmp_path / "exe"
    src.write_text("#!/bin/sh\n")
    proc = subprocess.run([sys.executable, "-m", "metacni", "install", "--conf-dir", str(tmp_path),
                           "--bin-dir", str(tmp_path / "bin"), "--source", str(src),
                           "--set", "namespaceIsolation=true", "--set", 'defaultNetworks=["a"]'],
                          capture_output=True, text=True, env=dict(os.environ, CNI_COMMAND=""))
    assert proc.returncode == 0, proc.stderr
    conf = json.loads((tmp_path / "00-metacni.conf").read_text())
    assert conf["namespaceIsolation"] is True and conf["defaultNetworks"] == ["a"]
    assert (tmp_path / "bin" / "metacni").exists()
    assert "kubernetes" not in subprocess.run(
        [sys.executable, "-c", "import sys, metacni.meta.install, metacni.meta.plugin; print(sorted(sys.modules))"],
        capture_output=True, text=True).stdout


def test_relative_conf_dir(tmp_path, monkeypatch):
    """`metacni install --conf-dir net.d` run from the parent directory resolves the primary once."""
    (tmp_path / "net.d").mkdir()
    _write(tmp_path / "net.d" / "10-pri.conflist", PRIMARY)
    monkeypatch.chdir(tmp_path)
    path = write_node_config("net.d")
    conf = json.loads(path.read_text())
    assert conf["clusterNetwork"] == str(tmp_path / "net.d" / "10-pri.conflist")
    assert conf["confDir"] == str(tmp_path / "net.d")


def test_daemonset_mounts_host_paths_at_identical_paths():
    """Both commands of conf/daemonset.yaml parse, name the node's own paths, and every hostPath
    is mounted at the path it has on the host (so 00-metacni.conf needs no translation)."""
    import yaml

    from metacni.cli.main import build_parser

    manifest = yaml.safe_load((Path(__file__).resolve().parents[2] / "conf" / "daemonset.yaml").read_text())
    spec = manifest["spec"]["template"]["spec"]
    install = build_parser().parse_args(spec["initContainers"][0]["command"][1:])
    daemon = build_parser().parse_args(spec["containers"][0]["command"][1:])
    assert install.conf_dir == daemon.conf_dir == "/etc/cni/net.d" and install.host_conf_dir is None
    assert install.bin_dir == daemon.cni_path == "/opt/cni/bin" and install.install_bin_dir is None
    assert install.cni_dir.startswith(daemon.cache_dir + "/")
    volumes = {v["name"]: v["hostPath"]["path"] for v in spec["volumes"]}
    for container in spec["initContainers"] + spec["containers"]:
        for mount in container["volumeMounts"]:
            assert mount["mountPath"] == volumes[mount["name"]], mount
    mounted = {m["mountPath"] for m in spec["containers"][0]["volumeMounts"]}
    assert {"/run/netns", "/var/run/netns", "/run/xtables.lock", "/var/lib/cni", "/run/metacni"} <= mounted


def test_installed_options_round_trip(tmp_path):
    _write(tmp_path / "10-pri.conflist", PRIMARY)
    options = dict(host_conf_dir="/etc/cni/net.d", kubeconfig="/etc/cni/net.d/metacni.d/metacni.kubeconfig",
                   cni_dir="/var/lib/cni/other", bin_dir="/usr/libexec/cni", name="meta",
                   extra={"apiTimeout": 10, "defaultNetworks": ["a"]})
    before = write_node_config(tmp_path, **options).read_bytes()
    recovered = installed_options(tmp_path)
    assert recovered == options
    (tmp_path / "00-metacni.conf").unlink()
    assert write_node_config(tmp_path, **recovered).read_bytes() == before
    assert installed_options(tmp_path / "nowhere") == {}
    _write(tmp_path / "00-metacni.conf", PRIMARY)  # not a metacni config
    assert installed_options(tmp_path) == {}


def test_daemon_regeneration_keeps_what_install_wrote(tmp_path):
    """The DaemonSet: the init container writes the host's paths and the kubeconfig; the daemon
    (conf dir /host/etc/cni/net.d in its container, no node_config) must not replace them."""
    from metacni.daemon.config import DaemonConfig
    from metacni.daemon.confwatch import default_regenerator

    _write(tmp_path / "10-pri.conflist", PRIMARY)
    path = write_node_config(tmp_path, host_conf_dir="/etc/cni/net.d", extra={"apiTimeout": 10},
                             kubeconfig="/etc/cni/net.d/metacni.d/metacni.kubeconfig")
    written, inode = path.read_bytes(), path.stat().st_ino
    regenerate = default_regenerator(str(tmp_path), DaemonConfig(conf_dir=str(tmp_path), kubeconfig="/in/container"))
    assert regenerate is not None
    regenerate()
    assert path.read_bytes() == written and path.stat().st_ino == inode  # nothing to write
    path.rename(tmp_path / "00-metacni.conf.cilium_bak")  # renamed away (Multus #972): the same comes back
    (tmp_path / "00-metacni.conf.cilium_bak").unlink()
    regenerate()
    assert path.read_bytes() == written
    _write(tmp_path / "05-new.conflist", dict(PRIMARY, name="new"))  # the primary still follows the conf dir
    regenerate()
    conf = json.loads(path.read_text())
    assert conf["clusterNetwork"] == "/etc/cni/net.d/05-new.conflist"
    assert conf["kubeconfig"] == "/etc/cni/net.d/metacni.d/metacni.kubeconfig" and conf["apiTimeout"] == 10
