"""A real runtime: podman (Debian's, CNI network backend) drives metacni.

Everything podman touches is private to the test: its root/runroot/tmpdir, image copies
(TMPDIR), the OCI runtime's state (--runtime-flag root=), containers.conf
(CONTAINERS_CONF), network config dir and CNI plugin dir are temporary; its commands run in a
test-created "node" netns (nsenter --net) and one private mount namespace, where podman's
container netns files, libcni cache and image caches live on tmpfs and crun sees cgroup v1 only (it refuses
the host's hybrid layout). The host's netns, mounts and firewall stay untouched.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path

import pytest

from metacni.meta.install import node_config
from metacni.sim.traffic import in_netns
from metacni_testkit.daemon import install_console_plugin
from metacni_testkit.netns import is_root, run

BUSYBOX = "/bin/busybox"  # Debian's busybox-static
pytestmark = pytest.mark.skipif(not (is_root() and shutil.which("podman") and Path(BUSYBOX).exists()),
                                reason="needs root, podman and busybox-static")
NODE_IP, OUTSIDE_IP, SUBNET = "192.0.2.1", "192.0.2.2", "10.88.77.0/24"
# /var/lib and /run are tmpfs in the private mount namespace: libcni's cache (/var/lib/cni), the
# image blob-info cache (/var/lib/containers/cache) and the OCI runtime's default state dir
# (/run/crun: crun's feature probe ignores --runtime-flag root=) never reach the host.
HOLDER = ("umount /sys/fs/cgroup/unified 2>/dev/null; mount -t tmpfs -o mode=755 tmpfs /run && "
          "mkdir /run/netns && mount -t tmpfs tmpfs /run/netns && "
          "mount -t tmpfs -o mode=755 tmpfs /var/lib && mkdir -p /var/lib/cni && echo ready && exec cat")


def image_tar(work: Path) -> Path:
    root = work / "img"
    (root / "bin").mkdir(parents=True)
    (root / "www").mkdir()
    shutil.copy(BUSYBOX, root / "bin" / "busybox")
    for applet in ("sh", "httpd"):
        (root / "bin" / applet).symlink_to("busybox")
    (root / "www" / "index.html").write_text("hello from a podman container on metacni\n")
    out = work / "img.tar"
    with tarfile.open(out, "w") as tar:
        tar.add(root, arcname=".")
    return out


def write_networks(work: Path, backend: str = "nftables") -> Path:
    """The primary conflist in metacni's conf dir; podman's dir holds only metacni's config,
    as a conflist: podman's CNI backend reads nothing else."""
    meta_dir, pod_dir = work / "metacni.d", work / "net.d"
    meta_dir.mkdir()
    pod_dir.mkdir()
    primary = {"cniVersion": "1.0.0", "name": "podnet", "plugins": [
        {"type": "bridge", "bridge": "mcpm0", "isGateway": True, "isDefaultGateway": True, "hairpinMode": True,
         "ipam": {"type": "host-local", "dataDir": str(work / "ipam"), "ranges": [[{"subnet": SUBNET}]]}},
        {"type": "portmap", "capabilities": {"portMappings": True}, "backend": backend},
        {"type": "masq", "backend": backend}, {"type": "forward", "backend": backend}]}
    (meta_dir / "10-podnet.conflist").write_text(json.dumps(primary))
    conf = node_config(meta_dir, cni_dir=str(work / "cni"), bin_dir=str(work / "bin"))
    plugin = {k: v for k, v in conf.items() if k not in ("cniVersion", "name")}
    (pod_dir / "00-metacni.conflist").write_text(
        json.dumps({"cniVersion": conf["cniVersion"], "name": conf["name"], "plugins": [plugin]}))
    return pod_dir


def http_get(netns: str, host: str, port: int, deadline: float = 20.0) -> str:
    import socket
    import time

    def once() -> str:
        with socket.create_connection((host, port), timeout=2) as s:
            s.sendall(f"GET / HTTP/1.0\r\nHost: {host}\r\n\r\n".encode())
            return s.makefile("rb").read().decode(errors="replace")

    end = time.monotonic() + deadline
    while True:
        try:
            return str(in_netns(f"/run/netns/{netns}", once))
        except OSError:
            if time.monotonic() > end:
                raise
            time.sleep(0.2)  # the container's httpd starts after podman returns


def test_podman_runs_a_container_on_metacni(box, tmp_path: Path):
    node, outside = box.netns("mcpmnode"), box.netns("mcpmout")
    run("ip", "link", "add", "eth0", "type", "veth", "peer", "name", "eth0", "netns", outside, netns=node)
    run("ip", "addr", "add", f"{NODE_IP}/24", "dev", "eth0", netns=node)
    run("ip", "link", "set", "eth0", "up", netns=node)
    run("ip", "addr", "add", f"{OUTSIDE_IP}/24", "dev", "eth0", netns=outside)
    run("ip", "link", "set", "eth0", "up", netns=outside)
    run("sysctl", "-qw", "net.ipv4.ip_forward=1", netns=node)
    install_console_plugin(tmp_path / "bin")  # no daemon here: metacni runs the call in-process
    pod_dir = write_networks(tmp_path)
    (tmp_path / "containers.conf").write_text(f"""
[containers]
default_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]
[network]
network_backend = "cni"
cni_plugin_dirs = ["{tmp_path / 'bin'}", "/usr/lib/cni"]
network_config_dir = "{pod_dir}"
[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
image_copy_tmp_dir = "{tmp_path / 'tmp'}"
""")
    (tmp_path / "tmp").mkdir()  # podman's tmpdir and image copies (not /run/libpod, /var/tmp)
    holder = subprocess.Popen(["unshare", "-m", "--propagation", "slave", "sh", "-c", HOLDER],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert holder.stdout is not None and holder.stdout.readline().strip() == "ready"
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "CONTAINERS_CONF": str(tmp_path / "containers.conf"),
           "HOME": str(tmp_path), "TMPDIR": str(tmp_path / "tmp")}
    runroot = Path(tempfile.mkdtemp(prefix="mcpm", dir="/tmp"))  # podman wants <= 50 characters
    base = ["nsenter", f"--mount=/proc/{holder.pid}/ns/mnt", f"--net=/run/netns/{node}", "podman",
            "--root", str(tmp_path / "root"), "--runroot", str(runroot),
            "--tmpdir", str(tmp_path / "tmp"), "--storage-driver", "vfs",
            "--runtime-flag", f"root={runroot / 'oci'}"]  # the OCI runtime's state, not /run/crun

    def podman(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run([*base, *args], capture_output=True, text=True, env=env, timeout=120)
        if check and proc.returncode != 0:
            raise AssertionError(f"podman {' '.join(args)}: {proc.stdout}{proc.stderr}")
        return proc

    try:
        podman("import", str(image_tar(tmp_path)), "localhost/mcbusy:latest")
        assert "metacni-network" in podman("network", "ls").stdout
        podman("run", "-d", "--name", "web", "--cgroups=disabled", "--network", "metacni-network",
               "-p", "18080:8080", "localhost/mcbusy:latest", "httpd", "-f", "-p", "8080", "-h", "/www")
        inspect = json.loads(podman("inspect", "web").stdout)[0]
        ip = inspect["NetworkSettings"]["Networks"]["metacni-network"]["IPAddress"]
        assert ip.startswith("10.88.77."), ip
        # published port: from outside the node, and to the container directly from the node
        assert "hello from a podman container" in http_get(outside, NODE_IP, 18080)
        assert "hello from a podman container" in http_get(node, ip, 8080)
        assert list((tmp_path / "ipam" / "podnet").glob("10.88.77.*"))
        podman("rm", "-f", "-t", "0", "web")
        # removal cleaned up: no lease, no veth, no hostPort rule, no metacni cache entry
        assert not list((tmp_path / "ipam" / "podnet").glob("10.88.77.*"))
        links = json.loads(run("ip", "-j", "link", "show", netns=node).stdout)
        assert not [ln["ifname"] for ln in links if ln["ifname"].startswith("veth")]
        assert "18080" not in run("nft", "list", "ruleset", netns=node).stdout
        assert not [p for p in (tmp_path / "cni").rglob("*") if p.is_file() and not p.name.endswith(".lock")]
    finally:
        podman("rm", "-f", "-t", "0", "--all", check=False)
        assert holder.stdin is not None
        holder.stdin.close()
        holder.wait(timeout=30)
        shutil.rmtree(runroot, ignore_errors=True)
