"""A private "node" for the node test: one mount + network namespace held by a process.

Inside it /run, /opt and /var/lib are tmpfs and /etc/cni/net.d, /var/lib/cni and /var/tmp are scratch directories
bind-mounted over the machine's, so a DaemonSet's hostPath volumes, containerd, podman and
cnitool all see node paths that are the test's own; the machine's dirs, interfaces and
firewall stay untouched. The image is built outside (it needs the host's network for apt) into
a podman storage of the test's own (graphroot under CACHE, reused across runs by content hash),
in a mount namespace of its own (:data:`BUILD_SANDBOX`): what podman, buildah, runc and
mmdebstrap write at fixed default paths lands in the test's scratch, never on the machine.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import shutil
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
#: the test's podman storage and base-rootfs cache, kept between runs (never the machine's storage)
CACHE = Path(os.environ.get("METACNI_E2E_CACHE", "/var/cache/metacni-e2e"))
#: what the image is built from: a change in any of these means a new image tag
IMAGE_INPUTS = ("conf/Containerfile", "conf/build-image.sh", "pyproject.toml", "setup.py", "MANIFEST.in",
                "metacni", "plugins", "shim")
log = logging.getLogger("e2e.node")

SETUP = """set -e
mount -t tmpfs -o mode=755 tmpfs /run
mkdir -p /run/netns /run/metacni /run/lock && touch /run/xtables.lock
mount --make-rshared /run
mount --bind /run/netns /run/netns && mount --make-shared /run/netns
mount -t tmpfs -o mode=755 tmpfs /opt
mkdir -p /opt/cni/bin
mount --bind "$1/etc-cni-net.d" /etc/cni/net.d
mount -t tmpfs -o mode=755 tmpfs /var/lib
mkdir -p /var/lib/cni
mount --bind "$1/var-lib-cni" /var/lib/cni
mount --bind "$1/var-tmp" /var/tmp
ip link set lo up
echo ready
exec cat
"""

#: the build's private mount namespace (``sh -c BUILD_SANDBOX sandbox SCRATCH CMD...``). Some writes
#: have no knob: containers/image's blob-info cache (/var/lib/containers/cache), runc's state
#: (/run/runc) for buildah's RUN steps, podman's tmp_dir and events (/run/libpod). /var/lib and
#: /run become overlays whose upper layers are scratch (the machine's files stay readable: apt,
#: dpkg and /etc/resolv.conf's target), /var/tmp (image copies) a scratch directory.
BUILD_SANDBOX = """set -e
s=$1; shift
mkdir -p "$s/var-lib/upper" "$s/var-lib/work" "$s/run/upper" "$s/run/work" "$s/var-tmp"
mount -t overlay overlay -o "lowerdir=/var/lib,upperdir=$s/var-lib/upper,workdir=$s/var-lib/work" /var/lib
mount -t overlay overlay -o "lowerdir=/run,upperdir=$s/run/upper,workdir=$s/run/work" /run
mount --bind "$s/var-tmp" /var/tmp
exec "$@"
"""


def podman_conf(work: Path, name: str = "containers.conf", extra: str = "") -> dict[str, str]:
    """The environment podman needs here (docs/operations.md): nofile limits it may set,
    cgroupfs, runc, file events, then ``extra`` TOML tables; HOME (pip's cache, ~/.config)
    and TMPDIR in ``work``."""
    hard = subprocess.run(["sh", "-c", "ulimit -Hn"], capture_output=True, text=True).stdout.strip()
    (work / "tmp").mkdir(parents=True, exist_ok=True)
    (work / name).write_text(f"""[containers]
default_ulimits = ["nofile={hard}:{hard}", "nproc=4096:4096"]
[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
runtime = "runc"
{extra}""")
    return {"CONTAINERS_CONF": str(work / name), "HOME": str(work), "TMPDIR": str(work / "tmp"),
            "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}


def storage_conf(path: Path, graphroot: Path, runroot: str, image_store: Path | None = None) -> Path:
    """``image_store``: a read-only additional image store (the cached images), so containers
    live in a graphroot of their own and never meet another run's container records."""
    extra = f'\n[storage.options]\nadditionalimagestores = ["{image_store}"]\n' if image_store else ""
    path.write_text(f'[storage]\ndriver = "overlay"\ngraphroot = "{graphroot}"\nrunroot = "{runroot}"\n{extra}')
    return path


def content_tag() -> str:
    """``localhost/metacni:e2e-<hash of IMAGE_INPUTS>`` (build outputs and caches excluded)."""
    digest = hashlib.sha256()
    for name in IMAGE_INPUTS:
        root = REPO / name
        files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []
        for f in files:
            rel = f.relative_to(REPO).as_posix()
            if "__pycache__" in rel or rel.endswith((".pyc", "metacni-shim", "-asan", "test-driver")):
                continue
            digest.update(rel.encode() + b"\0" + f.read_bytes() + b"\0")
    return f"localhost/metacni:e2e-{digest.hexdigest()[:16]}"


def build_image(work: Path, tag: str, *build_args: str) -> float:
    """Build ``tag`` with conf/build-image.sh unless the test's storage has it; seconds spent.
    A lock keeps parallel runs from building the same image twice."""
    CACHE.mkdir(parents=True, exist_ok=True)
    scratch = work / "build"
    (scratch / "cni").mkdir(parents=True, exist_ok=True)  # podman's CNI backend writes a lock in its config dir
    conf = podman_conf(scratch, "containers-build.conf", f'[network]\nnetwork_config_dir = "{scratch / "cni"}"\n')
    env = dict(os.environ, **conf, METACNI_IMAGE_CACHE=str(CACHE / "base"),
               CONTAINERS_STORAGE_CONF=str(storage_conf(scratch / "storage-build.conf", CACHE / "storage",
                                                        str(CACHE / "run"))))

    def host(*cmd: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """``cmd`` on the host's network, in the build's private mount namespace."""
        argv = ["unshare", "-m", "--propagation", "slave", "sh", "-c", BUILD_SANDBOX, "sandbox", str(scratch), *cmd]
        return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=timeout)

    start = time.monotonic()
    with open(CACHE / "build.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        exists = host("podman", "image", "exists", tag)
        if exists.returncode not in (0, 1):
            raise AssertionError(f"podman image exists {tag}: {exists.stderr}")
        if exists.returncode != 0:
            log.info("building %s: conf/build-image.sh %s %s", tag, tag, " ".join(build_args))
            proc = host(str(REPO / "conf" / "build-image.sh"), tag, *build_args, timeout=900)
            log.info("build output (tail):\n%s", "\n".join((proc.stdout + proc.stderr).splitlines()[-25:]))
            if proc.returncode != 0:
                raise AssertionError(f"image build failed:\n{proc.stdout}\n{proc.stderr}")
            prune_old_images(host)
        else:
            log.info("image %s is cached in %s", tag, CACHE / "storage")
    return time.monotonic() - start


def prune_old_images(host: Callable[..., subprocess.CompletedProcess[str]], keep: int = 6) -> None:
    """Drop all but the newest ``keep`` e2e tags (each source change builds one, and a roll
    one more) and the layers only they used, so the cache does not grow without bound; the
    base image and the build cache of the apt steps stay. ``host`` runs a command where the build ran."""
    out = host("podman", "images", "--sort", "created", "--format", "{{.Repository}}:{{.Tag}}").stdout.split()
    tags = [t for t in out if t.startswith("localhost/metacni:e2e-")]  # newest first
    old = tags[keep:]
    if old:
        log.info("pruning old e2e images %s", old)
        host("podman", "rmi", *old)
        host("podman", "image", "prune", "-f")


class Node:
    """The private mount+net namespace; :meth:`run` executes a command inside it."""

    def __init__(self, work: Path) -> None:
        self.work = work
        for d in ("etc-cni-net.d", "var-lib-cni", "var-tmp"):
            (work / d).mkdir(parents=True, exist_ok=True)
        self.holder = subprocess.Popen(["unshare", "-m", "-n", "--propagation", "slave", "sh", "-c", SETUP,
                                        "setup", str(work)],
                                       stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self.holder.stdout is not None
        line = self.holder.stdout.readline().strip()
        if line != "ready":
            self.close()
            raise RuntimeError("could not set up the node's namespaces")
        self.mnt = f"/proc/{self.holder.pid}/ns/mnt"
        self.net = f"/proc/{self.holder.pid}/ns/net"
        self.env = podman_conf(work)
        self.env["CONTAINERS_STORAGE_CONF"] = str(storage_conf(work / "storage.conf", work / "graph",
                                                               "/run/podman-storage", CACHE / "storage"))

    def argv(self, *cmd: str) -> list[str]:
        return ["nsenter", f"--mount={self.mnt}", f"--net={self.net}", *cmd]

    def run(self, *cmd: str, check: bool = True, timeout: float = 120, env: dict[str, str] | None = None,
            input: str | None = None) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(self.argv(*cmd), capture_output=True, text=True, timeout=timeout,
                              env={**self.env, **(env or {})}, input=input)
        if check and proc.returncode != 0:
            raise AssertionError(f"{' '.join(cmd)} -> {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
        return proc

    def popen(self, *cmd: str, env: dict[str, str] | None = None, **kwargs: object) -> subprocess.Popen[str]:
        return subprocess.Popen(self.argv(*cmd), env={**self.env, **(env or {})}, text=True,  # type: ignore[call-overload]
                                **kwargs)

    def podman(self, *args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return self.run("podman", *args, check=check, timeout=timeout)

    def close(self) -> None:
        if self.holder.stdin is not None:
            self.holder.stdin.close()
        try:
            self.holder.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.holder.kill()
            self.holder.wait()


def wait_for(what: str, check: Callable[[], object], deadline: float = 60.0, every: float = 0.2) -> object:
    """Poll ``check`` until it returns something truthy; AssertionError naming ``what`` after ``deadline`` s."""
    end = time.monotonic() + deadline
    last: object = None
    while time.monotonic() < end:
        last = check()
        if last:
            return last
        time.sleep(every)
    raise AssertionError(f"timed out waiting for {what} (last: {last!r})")


def copy_reference_plugins(node: Node, names: Sequence[str] = ()) -> None:
    """The node's primary plugins, where a node has them: /opt/cni/bin."""
    src = Path("/usr/lib/cni")
    for plugin in names or sorted(p.name for p in src.iterdir()):
        node.run("cp", str(src / plugin), f"/opt/cni/bin/{plugin}")


def tools_missing() -> str:
    for tool in ("podman", "mmdebstrap", "runc", "go", "unshare", "nsenter", "openssl"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (.ci/setup installs it)"
    if not Path("/usr/lib/cni/bridge").exists():
        return "containernetworking-plugins is not installed"
    return ""


BUSYBOX = "/bin/busybox"  # Debian's busybox-static


def busybox_oci(node: Node, name: str = "localhost/mcbusy:latest") -> Path:
    """A one-binary image (busybox-static) as an OCI archive, made with the node's podman."""
    import tarfile

    root = node.work / "busybox-root"
    (root / "bin").mkdir(parents=True, exist_ok=True)
    shutil.copy(BUSYBOX, root / "bin" / "busybox")
    for applet in ("sh", "ip", "sleep", "cat"):
        link = root / "bin" / applet
        if not link.is_symlink():
            link.symlink_to("busybox")
    tar_path = node.work / "busybox.tar"
    with tarfile.open(tar_path, "w") as tar:
        tar.add(root, arcname=".")
    node.podman("import", str(tar_path), name)
    out = node.work / "busybox-oci.tar"
    node.podman("save", "--format", "oci-archive", "-o", str(out), name)
    return out


class Containerd:
    """A private containerd in the node: own root (test dir), state and socket (node's /run)."""

    def __init__(self, node: Node) -> None:
        self.node = node
        self.sock = "/run/containerd-e2e/containerd.sock"
        conf = node.work / "containerd.toml"
        conf.write_text(f"""version = 2
root = "{node.work / 'containerd-root'}"
state = "/run/containerd-e2e/state"
disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.snapshotter.v1.btrfs",
                    "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper",
                    "io.containerd.snapshotter.v1.aufs", "io.containerd.tracing.processor.v1.otlp"]
[grpc]
  address = "{self.sock}"
[ttrpc]
  address = "{self.sock}.ttrpc"
""")
        self.log = open(node.work / "containerd.log", "w")  # noqa: SIM115 - closed in stop()
        self.proc = node.popen("containerd", "--config", str(conf), stdout=self.log, stderr=subprocess.STDOUT)
        wait_for("containerd's socket", lambda: self.ctr("version", check=False).returncode == 0, deadline=60)

    def ctr(self, *args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return self.node.run("ctr", "-a", self.sock, *args, check=check, timeout=timeout)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()
