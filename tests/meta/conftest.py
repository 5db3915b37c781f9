"""A node for meta-plugin tests: a node netns with a conf dir, a fake API server, and pods.

Everything lives inside the per-test node namespace: bridges, veths, and the fake API's
listening socket (so the plugin, whether in-process on the test thread or a subprocess
started with ``ip netns exec``, reaches it at 127.0.0.1 of the node).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from metacni.engine.invoke import Invoker
from metacni.engine.registry import Registry
from metacni.engine.request import Invocation
from metacni.kernel.netns import enter
from metacni.meta.install import write_node_config
from metacni.spec.args import CniArgs
from metacni.spec.errors import CNIError
from metacni.testing.fakeapi import FakeAPIServer
from metacni.testing.netns import Sandbox, link_names, links, netns_path, tag

CNI_PATH = "/usr/lib/cni"
PRIMARY = "primary-net"
PRIMARY_SUBNET = "10.88.0"
NETWORK_STATUS = "k8s.v1.cni.cncf.io/network-status"
NETWORKS = "k8s.v1.cni.cncf.io/networks"


@dataclass
class Pod:
    namespace: str
    name: str
    netns: str  # netns name
    container_id: str

    @property
    def path(self) -> str:
        return netns_path(self.netns)

    @property
    def cni_args(self) -> str:
        return (f"IgnoreUnknown=1;K8S_POD_NAMESPACE={self.namespace};K8S_POD_NAME={self.name};"
                f"K8S_POD_INFRA_CONTAINER_ID={self.container_id}")


@dataclass
class MetaNode:
    box: Sandbox
    name: str
    root: Path
    api: FakeAPIServer
    invoker: Invoker = field(default_factory=lambda: Invoker(Registry()))

    # -- layout ---------------------------------------------------------------------------
    @property
    def path(self) -> str:
        return netns_path(self.name)

    @property
    def conf_dir(self) -> Path:
        return self.root / "net.d"

    @property
    def cni_dir(self) -> Path:
        return self.root / "cni"

    @property
    def data_dir(self) -> Path:
        return self.root / "ipam"

    @property
    def kubeconfig(self) -> Path:
        return self.root / "kubeconfig"

    @property
    def meta_conf_path(self) -> Path:
        return self.conf_dir / "00-metacni.conf"

    def meta_conf(self) -> dict[str, Any]:
        return dict(json.loads(self.meta_conf_path.read_text()))

    # -- networks -------------------------------------------------------------------------
    def bridge_conf(self, name: str, bridge: str, subnet: str, *, gateway: bool = False,
                    version: str = "1.0.0") -> dict[str, Any]:
        conf: dict[str, Any] = {"cniVersion": version, "name": name, "type": "bridge", "bridge": bridge,
                                "isGateway": True,
                                "ipam": {"type": "host-local", "dataDir": str(self.data_dir),
                                         "ranges": [[{"subnet": subnet}]]}}
        if gateway:
            conf["isDefaultGateway"] = True
        return conf

    def write_primary(self, version: str = "1.0.0", **meta_options: Any) -> None:
        primary = self.bridge_conf(PRIMARY, "cni0", f"{PRIMARY_SUBNET}.0/24", gateway=True, version=version)
        conflist = {"cniVersion": version, "name": PRIMARY,
                    "plugins": [{k: v for k, v in primary.items() if k not in ("cniVersion", "name")},
                                {"type": "portmap", "capabilities": {"portMappings": True}}]}
        (self.conf_dir / "10-primary.conflist").write_text(json.dumps(conflist))
        options = {"cni_dir": str(self.cni_dir), "bin_dir": CNI_PATH, "kubeconfig": str(self.kubeconfig),
                   "extra": {"apiTimeout": 5, "apiConnectTimeout": 2, "apiRetries": 0}}
        options.update(meta_options)
        # The tests' NADs keep their leases under the test's own root (the node policy allows
        # only /var/lib/cni/networks by default, metacni/meta/trust.py).
        options["extra"] = {"allowedPaths": {"dataDir": [str(self.data_dir)]}, **options["extra"]}
        write_node_config(self.conf_dir, **options)

    def add_nad(self, name: str, bridge: str, subnet: str, namespace: str = "default",
                extra_plugins: list[dict[str, Any]] | None = None, **overrides: Any) -> None:
        conf = self.bridge_conf(name, bridge, subnet)
        conf.update(overrides)
        if extra_plugins:
            plugin = {k: v for k, v in conf.items() if k not in ("cniVersion", "name")}
            conf = {"cniVersion": "1.0.0", "name": name, "plugins": [plugin, *extra_plugins]}
        self.api.add_nad(namespace, name, conf)

    def two_nads(self) -> None:
        self.add_nad("net-a", "br-a", "10.89.1.0/24")
        self.add_nad("net-b", "br-b", "10.89.2.0/24")

    # -- pods -----------------------------------------------------------------------------
    def pod(self, name: str = "web", namespace: str = "default", annotations: dict[str, str] | None = None,
            *, in_api: bool = True) -> Pod:
        if in_api:
            self.api.add_pod(namespace, name, node_name="node-1", annotations=annotations)
        return Pod(namespace, name, self.box.netns("mcpod"), tag("cid", 12))

    # -- running the plugin ---------------------------------------------------------------
    def invocation(self, verb: str, pod: Pod, ifname: str = "eth0") -> Invocation:
        return Invocation(command=verb, container_id=pod.container_id, netns=pod.path, ifname=ifname,
                          args=CniArgs.parse(pod.cni_args), cni_path=(CNI_PATH,))

    def cni(self, verb: str, pod: Pod, *, runtime_config: dict[str, Any] | None = None,
            conf: dict[str, Any] | None = None) -> dict[str, Any] | None:
        """Run the meta plugin in-process, as skel would after the runtime exec'd it."""
        config = dict(conf or self.meta_conf())
        if runtime_config:
            config["runtimeConfig"] = runtime_config
        with enter(self.path):
            result = self.invoker.invoke("metacni", config, self.invocation(verb, pod))
        return result.to_wire() if result is not None else None

    def cni_error(self, verb: str, pod: Pod, **kwargs: Any) -> CNIError:
        with pytest.raises(CNIError) as info:
            self.cni(verb, pod, **kwargs)
        return info.value

    def exec_binary(self, verb: str, pod: Pod, *, conf: dict[str, Any] | None = None,
                    runtime_config: dict[str, Any] | None = None) -> tuple[int, dict[str, Any] | None]:
        """Run the installed ``metacni`` executable as a runtime would (subprocess in the node)."""
        config = dict(conf or self.meta_conf())
        if runtime_config:
            config["runtimeConfig"] = runtime_config
        env = dict(os.environ, CNI_COMMAND=verb, CNI_CONTAINERID=pod.container_id, CNI_NETNS=pod.path,
                   CNI_IFNAME="eth0", CNI_ARGS=pod.cni_args, CNI_PATH=CNI_PATH)
        metacni = shutil.which("metacni")
        assert metacni, "the metacni console script is not installed"
        proc = subprocess.run(["ip", "netns", "exec", self.name, metacni], input=json.dumps(config).encode(),
                              env=env, capture_output=True, timeout=120)
        out = proc.stdout.decode().strip()
        return proc.returncode, (json.loads(out) if out else None)

    def run(self, *argv: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["ip", "netns", "exec", self.name, *argv], capture_output=True, text=True,
                              env=env, timeout=120)

    def api_up(self) -> None:
        with enter(self.path):
            self.api.start()

    # -- observations ---------------------------------------------------------------------
    def leases(self, network: str) -> list[str]:
        directory = self.data_dir / network
        if not directory.is_dir():
            return []
        return sorted(p.name for p in directory.iterdir() if p.name != "lock" and not p.name.startswith("last_"))

    def all_leases(self) -> dict[str, list[str]]:
        if not self.data_dir.is_dir():
            return {}
        return {d.name: self.leases(d.name) for d in self.data_dir.iterdir() if self.leases(d.name)}

    def result_cache_files(self) -> list[str]:
        results = self.cni_dir / "results"
        return sorted(p.name for p in results.iterdir()) if results.is_dir() else []

    def veths(self) -> list[str]:
        return sorted(ln["ifname"] for ln in links(self.name) if ln.get("link_type") == "ether"
                      and ln["ifname"].startswith("veth"))

    def pod_links(self, pod: Pod) -> set[str]:
        return link_names(pod.netns)

    def network_status(self, pod: Pod) -> list[dict[str, Any]]:
        stored = self.api.get_pod(pod.namespace, pod.name)
        assert stored is not None
        text = (stored["metadata"].get("annotations") or {}).get(NETWORK_STATUS)
        assert text, f"no {NETWORK_STATUS} on {pod.namespace}/{pod.name}"
        return list(json.loads(text))

    def assert_clean(self, pod: Pod) -> None:
        """Nothing of the pod left: no interface, lease, veth, cache entry. In daemon mode DEL
        answers with the veth detached and its deletion pending in the daemon's link reaper
        (plugins/bridge/detach.py), so the links are awaited (bounded) rather than expected at once."""
        deadline = time.monotonic() + 30
        while (self.pod_links(pod) != {"lo"} or self.veths()) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert self.pod_links(pod) == {"lo"}
        assert self.all_leases() == {}
        assert self.veths() == []
        assert self.result_cache_files() == []
        assert not (self.cni_dir / pod.container_id).exists()


@pytest.fixture
def node(box: Sandbox) -> Iterator[MetaNode]:
    name = box.netns("mcnode")
    with tempfile.TemporaryDirectory(prefix="mcmeta-") as tmp:
        root = Path(tmp)
        (root / "net.d").mkdir()
        with enter(netns_path(name)):
            api = FakeAPIServer().start()  # listening socket born in the node netns
        try:
            api.write_kubeconfig(root / "kubeconfig")
            api.add_node("node-1", "10.88.0.0/24", "192.168.0.11")
            mn = MetaNode(box=box, name=name, root=root, api=api)
            mn.write_primary()
            yield mn
        finally:
            api.stop()

