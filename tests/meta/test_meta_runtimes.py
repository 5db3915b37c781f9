"""The installed executable, driven as a runtime drives it: our exec and libcni (golibcni)."""

from __future__ import annotations

import json
import os
import shutil

import pytest

from metacni_testkit import golibcni
from metacni_testkit.netns import addresses

NETWORKS = "k8s.v1.cni.cncf.io/networks"
PRIMARY = "primary-net"


def _rules(node) -> str:
    return node.sh("nft", "list", "ruleset").stdout + node.sh("iptables-save").stdout


def test_binary_add_del_converts_to_requested_version(node):
    node.two_nads()
    node.write_primary(cni_version="0.4.0", extra={"apiTimeout": 5, "apiRetries": 0})
    pod = node.pod(annotations={NETWORKS: "net-a,net-b"})
    rc, out = node.exec_binary("ADD", pod)
    assert rc == 0, out
    assert out["cniVersion"] == "0.4.0"
    assert all(ip["version"] == "4" for ip in out["ips"])  # 0.4.0 shape
    assert node.pod_links(pod) == {"lo", "eth0", "net1", "net2"}
    assert len(node.network_status(pod)) == 3
    rc, out = node.exec_binary("DEL", pod)
    assert rc == 0 and out is None
    node.assert_clean(pod)


def test_binary_error_is_cni_error_json(node):
    pod = node.pod(annotations={NETWORKS: "missing"})
    rc, out = node.exec_binary("ADD", pod)
    assert rc == 1
    assert out["code"] == 7 and "pod default/web" in out["details"] and "missing" in out["details"]
    node.assert_clean(pod)


@pytest.mark.skipif(not golibcni.available(), reason="needs go and Debian's libcni sources")
def test_libcni_runtime_reads_conf_dir(node, tmp_path):
    tool = golibcni.build()
    node.two_nads()
    sel = [{"name": "net-a"}, {"name": "net-b", "default-route": ["10.89.2.1"]}]
    pod = node.pod(annotations={NETWORKS: json.dumps(sel)})
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    os.symlink(shutil.which("metacni"), bin_dir / "metacni")
    # The runtime takes the lexically first file of the conf dir, as kubelet/containerd do.
    first = sorted(p for p in node.conf_dir.iterdir() if p.suffix in (".conf", ".conflist", ".json"))[0]
    assert first.name == "00-metacni.conf"
    env = dict(os.environ, CNI_PATH=f"{bin_dir}:/usr/lib/cni", CNI_CACHE_DIR=str(tmp_path / "runtime-cache"),
               CNI_RT_ARGS=f"K8S_POD_NAMESPACE=default;K8S_POD_NAME=web;K8S_POD_INFRA_CONTAINER_ID={pod.container_id}",
               CAP_ARGS=json.dumps({"portMappings": [{"hostPort": 18080, "containerPort": 80, "protocol": "tcp"}]}))
    proc = node.sh(str(tool), "add", str(first), pod.path, pod.container_id, "eth0", env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    result = json.loads(proc.stdout)
    assert result["ips"][0]["address"].startswith("10.88.0.")
    assert node.pod_links(pod) == {"lo", "eth0", "net1", "net2"}
    assert addresses("net2", netns=pod.netns)[0].startswith("10.89.2.")
    status = node.network_status(pod)
    assert [s["name"] for s in status] == [PRIMARY, "default/net-a", "default/net-b"]
    assert status[2]["gateway"] == ["10.89.2.1"]

    assert "18080" in _rules(node)  # portmap of the primary got the runtime's portMappings
    proc = node.sh(str(tool), "check", str(first), pod.path, pod.container_id, "eth0", env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    node.api.delete_pod("default", "web")
    node.api.stop()
    proc = node.sh(str(tool), "del", str(first), pod.path, pod.container_id, "eth0", env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    node.assert_clean(pod)
    assert "18080" not in _rules(node)


@pytest.mark.skipif(not golibcni.available(), reason="needs go and Debian's libcni sources")
def test_libcni_runtime_with_pod_annotations_capability(node, tmp_path):
    """containerd-style: annotations in runtimeConfig, so the pod is never read from the API."""
    tool = golibcni.build()
    node.add_nad("net-a", "br-a", "10.89.1.0/24")
    pod = node.pod()
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    os.symlink(shutil.which("metacni"), bin_dir / "metacni")
    env = dict(os.environ, CNI_PATH=f"{bin_dir}:/usr/lib/cni", CNI_CACHE_DIR=str(tmp_path / "runtime-cache"),
               CNI_RT_ARGS="K8S_POD_NAMESPACE=default;K8S_POD_NAME=web",
               CAP_ARGS=json.dumps({"io.kubernetes.cri.pod-annotations": {NETWORKS: "net-a@data0"}}))
    node.api.reset_counts()
    proc = node.sh(str(tool), "add", str(node.meta_conf_path), pod.path, pod.container_id, "eth0", env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert node.api.reads("pods") == 0
    assert node.pod_links(pod) == {"lo", "eth0", "data0"}
    proc = node.sh(str(tool), "del", str(node.meta_conf_path), pod.path, pod.container_id, "eth0", env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    node.assert_clean(pod)


_DEL_PROBE = """
import io, json, os, sys
from metacni.engine.skel import run_cni
out = io.StringIO()
rc = run_cni(stdin=io.BytesIO(sys.argv[1].encode()), stdout=out)
print(json.dumps({"rc": rc, "out": out.getvalue(), "kubernetes": "kubernetes" in sys.modules}))
"""


def test_del_from_record_never_imports_kubernetes(node):
    import sys

    node.add_nad("net-a", "br-a", "10.89.1.0/24")
    pod = node.pod(annotations={NETWORKS: "net-a"})
    node.cni("ADD", pod)
    env = dict(os.environ, CNI_COMMAND="DEL", CNI_CONTAINERID=pod.container_id, CNI_NETNS=pod.path,
               CNI_IFNAME="eth0", CNI_ARGS=pod.cni_args, CNI_PATH="/usr/lib/cni")
    proc = node.sh(sys.executable, "-c", _DEL_PROBE, json.dumps(node.meta_conf()), env=env)
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["rc"] == 0, report
    assert report["kubernetes"] is False
    node.assert_clean(pod)
