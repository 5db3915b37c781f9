"""The node test: the image, the DaemonSet's containers run by podman exactly as
conf/daemonset.yaml says, and a host runtime (cnitool, built from libcni) creating pods
through the installed static shim.

Everything runs in a private "node" (e2e/nodehost.py): its own mount and network namespace,
where /etc/cni/net.d, /opt/cni/bin, /var/lib/cni and /run are the test's scratch. The node's
primary network is a reference bridge conflist run by the reference plugins; the Kubernetes API
is the fake server over HTTPS inside the node, reached through in-cluster config (the service
account mounted where kubelet mounts it, KUBERNETES_SERVICE_HOST/PORT set). The log shows the
image build, every podman command derived from the manifest, and each pod.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import ssl
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import manifest_podman  # noqa: E402
import nodehost  # noqa: E402
from nodehost import Node, wait_for  # noqa: E402

from metacni.daemon.protocol import record_name  # noqa: E402

try:  # the fake API and in_netns moved from metacni.testing to metacni.sim on main
    from metacni.sim.fakeapi import FakeAPIServer  # type: ignore[import-not-found,unused-ignore]
    from metacni.sim.fakeapi.server import DEFAULT_TOKEN  # type: ignore[import-not-found,unused-ignore]
    from metacni.sim.traffic import in_netns  # type: ignore[import-not-found,unused-ignore]
except ImportError:
    from metacni.testing.fakeapi import FakeAPIServer  # type: ignore[no-redef,unused-ignore]
    from metacni.testing.fakeapi.server import DEFAULT_TOKEN  # type: ignore[no-redef,unused-ignore]
    from metacni.testing.traffic import in_netns  # type: ignore[no-redef,unused-ignore]

log = logging.getLogger("e2e.node")
log.setLevel(logging.INFO)  # the build, each derived podman command and each pod are in the test's log
REPO = nodehost.REPO
SA_MOUNT = "/var/run/secrets/kubernetes.io/serviceaccount"
SUBNET, NET1, NET2 = "10.99.0.0/24", "10.99.1.0/24", "10.99.2.0/24"
NETWORK_STATUS = "k8s.v1.cni.cncf.io/network-status"


def _skip_reason() -> str:
    if os.geteuid() != 0:
        return "needs root"
    missing = nodehost.tools_missing()
    if missing:
        return missing
    probe = subprocess.run(["podman", "--version"], capture_output=True, text=True)
    return "" if probe.returncode == 0 else f"podman cannot run here: {probe.stderr.strip()}"


pytestmark = pytest.mark.skipif(bool(_skip_reason()), reason=_skip_reason() or "ok")


def build_cnitool(out: Path) -> Path:
    env = dict(os.environ, GOPATH="/usr/share/gocode", GO111MODULE="off", GOFLAGS="",
               GOCACHE=str(nodehost.CACHE / "gocache"))
    target = out / "cnitool"
    subprocess.run(["go", "build", "-o", str(target), "."], cwd=REPO / "e2e" / "cnitool", env=env, check=True,
                   capture_output=True, timeout=300)
    return target


def make_pki(d: Path) -> tuple[Path, Path, Path]:
    """A CA and a server certificate for 127.0.0.1 (the API inside the node)."""
    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=d, check=True, capture_output=True, timeout=60)

    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    openssl("req", "-x509", *ec, "-subj", "/CN=node-test-ca", "-days", "2", "-keyout", "ca.key", "-out", "ca.crt")
    (d / "server.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:kubernetes.default.svc\n")
    openssl("req", "-new", *ec, "-subj", "/CN=kube-apiserver", "-keyout", "server.key", "-out", "server.csr")
    openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
            "-days", "2", "-extfile", "server.ext", "-out", "server.crt")
    return d / "ca.crt", d / "server.crt", d / "server.key"


@dataclass
class Cluster:
    """The node, its API and the DaemonSet's containers as podman runs them."""

    node: Node
    api: FakeAPIServer
    node_name: str
    cnitool: Path
    containers: dict[str, manifest_podman.PodmanContainer]
    suffix: str = field(default_factory=lambda: uuid.uuid4().hex[:6])
    pods: int = 0

    # -- the DaemonSet ---------------------------------------------------------------------
    def cname(self, container: str) -> str:
        return f"mcnode-{self.suffix}-{container}"

    def create_host_paths(self, container: manifest_podman.PodmanContainer) -> None:
        """What kubelet creates for DirectoryOrCreate/FileOrCreate volumes, inside the node."""
        for path, kind in container.host_paths:
            self.node.run("sh", "-c", 'mkdir -p "$1"' if kind == "Directory" else
                          'mkdir -p "$(dirname "$1")" && { [ -e "$1" ] || touch "$1"; }', "sh", path)

    def run_init(self, image: str) -> str:
        init = self.containers["install"]
        self.create_host_paths(init)
        log.info("init container: %s", init.describe(self.cname("install"), image, detach=False))
        return self.node.podman(*init.run_args(self.cname("install"), image, detach=False)).stdout

    def start_daemon(self, image: str) -> None:
        daemon = self.containers["daemon"]
        self.create_host_paths(daemon)
        log.info("daemon container: %s", daemon.describe(self.cname("daemon"), image, detach=True))
        self.node.podman(*daemon.run_args(self.cname("daemon"), image, detach=True))
        self.wait_ready()

    def probe(self, kind: str) -> bool:
        argv = self.containers["daemon"].probes[kind]
        return self.node.podman("exec", self.cname("daemon"), *argv, check=False, timeout=30).returncode == 0

    def wait_ready(self) -> None:
        log.info("readiness probe: podman exec %s %s", self.cname("daemon"),
                 " ".join(self.containers["daemon"].probes["readiness"]))
        try:
            wait_for("the daemon's readiness probe", lambda: self.probe("readiness"), deadline=90, every=0.5)
        except AssertionError:
            log.error("daemon log:\n%s", self.node.podman("logs", self.cname("daemon"), check=False).stderr[-5000:])
            raise
        assert self.probe("liveness")

    def stop_daemon(self, remove: bool = True) -> None:
        self.node.podman("stop", self.cname("daemon"), timeout=60)
        if remove:
            self.node.podman("rm", self.cname("daemon"))

    # -- pods through the runtime ------------------------------------------------------------
    def new_pod(self, networks: str = "") -> tuple[str, str]:
        """A pod object in the API and its netns in the node; (pod name, netns path)."""
        self.pods += 1
        name = f"pod{self.pods}"
        ann = {"k8s.v1.cni.cncf.io/networks": networks} if networks else None
        self.api.add_pod("default", name, node_name=self.node_name, annotations=ann, uid=str(uuid.uuid4()))
        self.node.run("ip", "netns", "add", f"mcn-{self.suffix}-{name}")
        return name, f"/run/netns/mcn-{self.suffix}-{name}"

    def cni(self, command: str, pod: str, netns: str, network: str = "-") -> subprocess.CompletedProcess[str]:
        env = {"CNI_PATH": "/opt/cni/bin", "NETCONFPATH": "/etc/cni/net.d", "CNI_CONTAINERID": f"cid-{pod}",
               "CNI_ARGS": f"IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME={pod};"
                           f"K8S_POD_INFRA_CONTAINER_ID=cid-{pod}"}
        return self.node.run(str(self.cnitool), command, network, netns, env=env, check=False, timeout=150)

    def links(self, netns: str) -> set[str]:
        out = self.node.run("ip", "-n", Path(netns).name, "-j", "link", "show").stdout
        return {entry["ifname"] for entry in json.loads(out or "[]")}

    def wait_empty(self, netns: str) -> None:
        """The daemon answers DEL once a veth is cut off and deletes it moments later (its reaper)."""
        wait_for(f"{netns} to hold only lo", lambda: self.links(netns) == {"lo"}, deadline=30)

    def leases(self) -> list[str]:
        root = self.node.work / "var-lib-cni" / "networks"
        return sorted(p.name for p in root.rglob("*") if p.is_file() and p.name[0].isdigit()) if root.exists() else []


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    work = Path(os.environ.get("METACNI_E2E_WORK") or tmp_path)
    image = nodehost.content_tag()
    spent = nodehost.build_image(work, image)
    log.info("image %s ready in %.1f s", image, spent)
    cnitool = build_cnitool(work)
    node = Node(work)
    api: FakeAPIServer | None = None
    c: Cluster | None = None
    try:
        nodehost.copy_reference_plugins(node)
        primary = {"cniVersion": "1.0.0", "name": "nodenet", "plugins": [
            {"type": "bridge", "bridge": "mcnode0", "isGateway": True, "ipMasq": False,
             "ipam": {"type": "host-local", "ranges": [[{"subnet": SUBNET}]], "routes": [{"dst": "0.0.0.0/0"}]}},
            {"type": "portmap", "capabilities": {"portMappings": True}}]}
        (work / "etc-cni-net.d" / "10-nodenet.conflist").write_text(json.dumps(primary))
        ca, cert, key = make_pki(work)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert, key)
        api = FakeAPIServer(require_auth=True, ssl_context=ctx)
        in_netns(node.net, api.start)  # listens on the node's 127.0.0.1
        node_name = f"mcnode-{uuid.uuid4().hex[:6]}"
        api.add_node(node_name, "10.99.0.0/24", "127.0.0.1")
        for name, subnet, bridge in (("net-a", NET1, "mcnodea"), ("net-b", NET2, "mcnodeb")):
            api.add_nad("default", name, {"cniVersion": "1.0.0", "type": "bridge", "bridge": bridge,
                                          "ipam": {"type": "host-local", "ranges": [[{"subnet": subnet}]]}})
        sa = work / "serviceaccount"
        sa.mkdir()
        (sa / "token").write_text(DEFAULT_TOKEN)
        (sa / "namespace").write_text("kube-system")
        shutil.copy(ca, sa / "ca.crt")
        ds = manifest_podman.load_daemonset(REPO / "conf" / "daemonset.yaml")
        containers = manifest_podman.containers(
            ds, node_name=node_name, extra_volumes=[f"{sa}:{SA_MOUNT}:ro"],
            extra_env={"KUBERNETES_SERVICE_HOST": "127.0.0.1", "KUBERNETES_SERVICE_PORT": str(api.port)})
        c = Cluster(node, api, node_name, cnitool, containers)
        c.image = image  # type: ignore[attr-defined]
        yield c
    finally:
        if c is not None:
            for name in ("install", "daemon", "uninstall", "done"):
                node.podman("rm", "-f", "-t", "0", c.cname(name), check=False)
            for ns in node.run("ip", "netns", "list", check=False).stdout.split():
                if ns.startswith("mcn-"):
                    node.run("ip", "netns", "del", ns, check=False)
        if api is not None:
            api.stop()
        node.close()


def conf_paths(conf: dict[str, object]) -> list[str]:
    """Every path-valued key of 00-metacni.conf."""
    keys = ("confDir", "cniDir", "binDir", "clusterNetwork", "kubeconfig", "daemonSocket")
    return [str(conf[k]) for k in keys if isinstance(conf.get(k), str) and str(conf[k]).startswith("/")]


def test_daemonset_paths_identical_and_cnitool_pods_with_two_nads(cluster: Cluster) -> None:
    c, work = cluster, cluster.node.work
    image = c.image  # type: ignore[attr-defined]
    log.info("init: %s", c.run_init(image).strip())
    conf = json.loads((work / "etc-cni-net.d" / "00-metacni.conf").read_text())
    assert conf["type"] == "metacni" and conf["clusterNetwork"] == "/etc/cni/net.d/10-nodenet.conflist", conf
    shim_info = c.node.run("file", "-L", "/opt/cni/bin/metacni").stdout
    assert "statically linked" in shim_info, shim_info
    c.start_daemon(image)

    # every path in 00-metacni.conf is the same file for the host and in the daemon container
    paths = conf_paths(conf) + ["/opt/cni/bin/metacni", "/run/metacni/metacni.sock"]
    assert {"/etc/cni/net.d", "/opt/cni/bin", "/var/lib/cni/metacni"} <= set(paths), paths
    c.node.run("mkdir", "-p", conf["cniDir"])
    host = {p: c.node.run("stat", "-L", "-c", "%d:%i", p).stdout.strip() for p in paths}
    inside = {p: c.node.podman("exec", c.cname("daemon"), "stat", "-L", "-c", "%d:%i", p).stdout.strip()
              for p in paths}
    log.info("paths (dev:inode) host %s, daemon container %s", host, inside)
    assert host == inside

    # a pod with two NADs: eth0, net1, net2, and network-status written
    pod, netns = c.new_pod("net-a,net-b")
    add = c.cni("add", pod, netns)
    log.info("cnitool ADD %s: rc %d %s %s", pod, add.returncode, add.stdout.strip(), add.stderr.strip())
    assert add.returncode == 0, add.stderr
    assert {"eth0", "net1", "net2"} <= c.links(netns)
    assert json.loads(add.stdout)["ips"][0]["address"].startswith("10.99.0.")
    # the daemon writes network-status after the ADD answered
    wait_for(f"{pod}'s network-status", lambda: NETWORK_STATUS in (
        c.api.get_pod("default", pod)["metadata"].get("annotations") or {}), deadline=30)
    status = json.loads(c.api.get_pod("default", pod)["metadata"]["annotations"][NETWORK_STATUS])
    assert [s.get("interface") for s in status] == ["eth0", "net1", "net2"], status
    assert len(c.leases()) == 3
    delete = c.cni("del", pod, netns)
    assert delete.returncode == 0, delete.stderr
    c.wait_empty(netns)
    assert c.leases() == []


class Churn(threading.Thread):
    """Pods created and deleted back to back through the runtime, as kubelet would: an ADD
    answered with code 11 is retried (kubelet's behaviour), anything else is a failure."""

    def __init__(self, c: Cluster, networks: str = "net-a") -> None:
        super().__init__(daemon=True)
        self.c, self.networks = c, networks
        self.stop_event = threading.Event()
        self.failures: list[str] = []
        self.retries = 0
        self.done: list[str] = []  # netns of pods added and deleted
        self.lock = threading.Lock()

    def run(self) -> None:
        while not self.stop_event.is_set():
            with self.lock:
                pod, netns = self.c.new_pod(self.networks)
            while True:
                add = self.c.cni("add", pod, netns)
                if add.returncode == 0:
                    break
                if "code 11" not in add.stderr:
                    self.failures.append(f"ADD {pod}: {add.stderr.strip()}")
                    break
                self.retries += 1
                if self.stop_event.wait(0.3):  # kubelet backs off too
                    break
            delete = self.c.cni("del", pod, netns)
            if delete.returncode != 0:
                self.failures.append(f"DEL {pod}: {delete.stderr.strip()}")
            if "text file busy" in (add.stderr + delete.stderr).lower():
                self.failures.append(f"{pod}: text file busy")
            self.done.append(netns)

    def finish(self) -> None:
        self.stop_event.set()
        self.join(timeout=300)
        assert not self.is_alive()


def test_daemon_restart_roll_and_uninstall_under_churn(cluster: Cluster) -> None:
    c, work = cluster, cluster.node.work
    image = c.image  # type: ignore[attr-defined]
    c.run_init(image)
    c.start_daemon(image)
    pending = work / "var-lib-cni" / "metacni" / "pending-del"
    churn = Churn(c)
    churn.start()
    try:
        wait_for("pods created before the restart", lambda: len(churn.done) >= 2, deadline=120)
        pod, netns = c.new_pod("net-a,net-b")
        assert c.cni("add", pod, netns).returncode == 0
        # stop the daemon: ADDs get code 11, a DEL is recorded and exits 0
        c.stop_daemon(remove=False)
        log.info("daemon stopped")
        down = c.cni("add", *c.new_pod())
        assert down.returncode == 1 and "code 11" in down.stderr, down.stderr
        delete = c.cni("del", pod, netns)
        assert delete.returncode == 0, delete.stderr
        records = sorted(p.name for p in pending.glob("*.json"))
        assert record_name(f"cid-{pod}", "eth0") in records, records
        assert {"eth0", "net1", "net2"} <= c.links(netns)  # not carried out yet
        wait_for("a churn ADD answered with code 11", lambda: churn.retries > 0, deadline=60)
        # start it again: the recorded DELs are carried out before it serves
        c.node.podman("start", c.cname("daemon"))
        c.wait_ready()
        log.info("daemon started again")
        assert not list(pending.glob("*.json"))
        c.wait_empty(netns)
        # roll to a rebuilt image tag while pods keep coming
        rolled = f"{image}-roll"
        log.info("image %s built in %.1f s", rolled,
                 nodehost.build_image(work, rolled, "--build-arg", "METACNI_BUILD=roll"))
        before = len(churn.done)
        c.stop_daemon()
        c.run_init(rolled)
        c.start_daemon(rolled)
        log.info("rolled to %s", rolled)
        wait_for("pods created after the roll", lambda: len(churn.done) >= before + 2, deadline=120)
    finally:
        churn.finish()
    log.info("churn: %d pods, %d code-11 retries, failures %s", len(churn.done), churn.retries, churn.failures)
    assert churn.failures == []
    assert churn.retries > 0
    # nothing leaked: every pod's netns is empty again and every lease is released
    for ns in churn.done:
        c.wait_empty(ns)
    assert c.leases() == []
    assert not list(pending.glob("*.json"))
    state = work / "var-lib-cni"
    left = [str(p.relative_to(state)) for p in state.rglob("*")
            if p.is_file() and not p.name.endswith(".lock") and p.name != "lock"
            and not p.name.startswith("last_reserved_ip") and "kube-discovery" not in p.parts]
    assert left == [], left  # no cache record, result cache entry or pending DEL outlives its pod
    # (the API discovery cache is the daemon's, not a pod's: design 1603)

    # uninstall, as conf/uninstall.yaml runs it once the DaemonSet is gone
    c.stop_daemon()
    uninstall = manifest_podman.containers(manifest_podman.load_daemonset(REPO / "conf" / "uninstall.yaml"),
                                           node_name=c.node_name)["uninstall"]
    log.info("uninstall: %s", uninstall.describe(c.cname("uninstall"), image, detach=False))
    out = c.node.podman(*uninstall.run_args(c.cname("uninstall"), image, detach=False)).stdout
    log.info("uninstall: %s", out.strip())
    assert not (work / "etc-cni-net.d" / "00-metacni.conf").exists()
    assert c.node.run("test", "-e", "/opt/cni/bin/metacni", check=False).returncode == 1
    # the runtime's next pod uses the primary directly (its NADs are not attached: no metacni)
    pod, netns = c.new_pod("net-a,net-b")
    add = c.cni("add", pod, netns)
    assert add.returncode == 0, add.stderr
    assert json.loads(add.stdout)["ips"][0]["address"].startswith("10.99.0.")
    assert c.links(netns) == {"lo", "eth0"}
    assert NETWORK_STATUS not in (c.api.get_pod("default", pod)["metadata"].get("annotations") or {})
    assert c.cni("del", pod, netns).returncode == 0
    assert c.leases() == []


def test_containerd_ctr_run_cni_through_the_installed_shim(cluster: Cluster) -> None:
    """containerd's `ctr run --cni` reads /etc/cni/net.d and /opt/cni/bin: its container gets the
    primary as eth0 through the shim and the daemon, and its DEL (netns already gone) cleans up."""
    c = cluster
    image = c.image  # type: ignore[attr-defined]
    c.run_init(image)
    c.start_daemon(image)
    archive = nodehost.busybox_oci(c.node)
    ctrd = nodehost.Containerd(c.node)
    try:
        ctrd.ctr("images", "import", "--base-name", "localhost/mcbusy", str(archive))
        ref = ctrd.ctr("images", "ls", "-q").stdout.split()[0]
        for n in range(2):
            run = ctrd.ctr("run", "--rm", "--cni", ref, f"mcctr-{c.suffix}-{n}", "ip", "-o", "-4", "addr", "show",
                           timeout=180)
            log.info("ctr run --cni (%d): %s", n, run.stdout.strip())
            assert "eth0" in run.stdout and "inet 10.99.0." in run.stdout, run.stdout
            assert c.leases() == [], "ctr's DEL did not release the address"
    finally:
        ctrd.stop()


def test_podman_cni_backend_runs_a_container_through_the_installed_shim(cluster: Cluster) -> None:
    """podman (CNI backend, a second podman with its own storage) runs a container on metacni:
    the network's conflist names `type: metacni`, which podman finds in /opt/cni/bin: the shim."""
    c, work = cluster, cluster.node.work
    image = c.image  # type: ignore[attr-defined]
    c.run_init(image)
    c.start_daemon(image)
    conf = json.loads((work / "etc-cni-net.d" / "00-metacni.conf").read_text())
    net_dir = work / "podman-net.d"  # podman's CNI backend reads only .conflist files
    net_dir.mkdir()
    plugin = {k: v for k, v in conf.items() if k not in ("cniVersion", "name")}
    (net_dir / "00-metacni.conflist").write_text(json.dumps(
        {"cniVersion": conf["cniVersion"], "name": conf["name"], "plugins": [plugin]}))
    rt_conf = work / "containers-rt.conf"
    rt_conf.write_text(Path(c.node.env["CONTAINERS_CONF"]).read_text() + f"""[network]
network_backend = "cni"
cni_plugin_dirs = ["/opt/cni/bin"]
network_config_dir = "{net_dir}"
""")
    storage = nodehost.storage_conf(work / "storage-rt.conf", work / "graph-rt", "/run/podman-rt",
                                    nodehost.CACHE / "storage")
    env = {"CONTAINERS_CONF": str(rt_conf), "CONTAINERS_STORAGE_CONF": str(storage)}
    nodehost.busybox_oci(c.node)  # imports the image into the node's podman; the runtime one needs its own
    rt = lambda *a, check=True: c.node.run("podman", *a, env=env, check=check, timeout=180)  # noqa: E731
    rt("import", str(work / "busybox.tar"), "localhost/mcbusy:latest")
    try:
        assert conf["name"] in rt("network", "ls").stdout
        for n in range(2):
            out = rt("run", "--rm", "--network", conf["name"], "localhost/mcbusy:latest",
                     "ip", "-o", "-4", "addr", "show").stdout
            log.info("podman run --network %s (%d): %s", conf["name"], n, out.strip())
            assert "eth0" in out and "inet 10.99.0." in out, out
            assert c.leases() == [], "podman's DEL did not release the address"
    finally:
        rt("rm", "-f", "--all", check=False)
