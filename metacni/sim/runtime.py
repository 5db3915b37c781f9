"""One node's metacni install and the container runtime that calls it.

The runtime is libcni's behaviour (:class:`~metacni.engine.chain.ChainRunner`, every plugin
exec'd): it picks the lexically first config of the node's conf dir (``00-metacni.conf``),
execs ``metacni`` from the node's bin dir -- the static shim, which forwards to the node's
daemon -- from a thread inside the node namespace, and keeps libcni's result cache.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from metacni.daemon.install import install_shim
from metacni.engine.cache import ResultCache
from metacni.engine.chain import ChainRunner, RuntimeConf
from metacni.engine.invoke import Invoker
from metacni.engine.registry import Registry
from metacni.meta.install import write_node_config
from metacni.sim.traffic import in_netns
from metacni.spec.args import CniArgs
from metacni.spec.config import NetworkList, conf_files, network_list_from_file

from .host import SimError, netns_path
from .netconf import primary_conflist
from .plan import NodePlan
from .unixhttp import readiness, status_written

if TYPE_CHECKING:
    from .cluster import Pod

REFERENCE_PLUGINS = "/usr/lib/cni"
POD_ANNOTATIONS = "io.kubernetes.cri.pod-annotations"


@dataclass
class NodeRuntime:
    node: NodePlan
    root: Path
    kubeconfig: Path
    runner: ChainRunner | None = None

    @classmethod
    def prepare(cls, node: NodePlan, root: Path, kubeconfig: Path, backend: str) -> NodeRuntime:
        """Lay out the node's directories, primary conflist, shim and ``00-metacni.conf``."""
        rt = cls(node, root, kubeconfig)
        for sub in ("net.d", "bin", "cni", "ipam", "daemon-cache", "runtime-cache", "run"):
            (root / sub).mkdir(parents=True, exist_ok=True)
        (rt.conf_dir / "10-podnet.conflist").write_text(
            json.dumps(primary_conflist(node, root / "ipam", backend), indent=2))
        install_shim(rt.bin_dir)
        write_node_config(rt.conf_dir, kubeconfig=str(kubeconfig), cni_dir=str(root / "cni"),
                          bin_dir=str(rt.bin_dir),
                          extra={"daemonSocket": rt.socket,
                                 # the shared NAD's lease store (netconf.second_network)
                                 "allowedPaths": {"dataDir": [str(root.parent / "net1-ipam")]}})
        return rt

    @property
    def conf_dir(self) -> Path:
        return self.root / "net.d"

    @property
    def bin_dir(self) -> Path:
        return self.root / "bin"

    @property
    def socket(self) -> str:
        return str(self.root / "run" / "metacni.sock")

    @property
    def cni_path(self) -> list[str]:
        return [str(self.bin_dir), REFERENCE_PLUGINS]

    def daemon_argv(self) -> list[str]:
        """``metacni daemon`` started inside the node namespace, as its DaemonSet pod would be."""
        return ["ip", "netns", "exec", self.node.netns, sys.executable, "-m", "metacni", "--log-level", "INFO",
                "daemon", "--socket", self.socket, "--node-name", self.node.name,
                "--kubeconfig", str(self.kubeconfig), "--conf-dir", str(self.conf_dir),
                "--cni-path", ":".join(self.cni_path), "--cache-dir", str(self.root / "daemon-cache"),
                "--no-regenerate-config", "--dynamic-networks", "--log-file", str(self.root / "daemon.log")]

    def log_tail(self, n: int = 3000) -> str:
        text = ""
        for name in ("daemon.stderr", "daemon.log"):
            path = self.root / name
            if path.exists():
                text += path.read_text(errors="replace")[-n:]
        return text

    def status(self) -> dict[str, Any]:
        return readiness(self.socket)

    def status_written(self, timeout: float = 10.0) -> bool:
        """The daemon has written the network-status of every ADD it answered."""
        return status_written(self.socket, timeout)

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        last: object = None
        while time.monotonic() < deadline:
            try:
                last = self.status()
                if isinstance(last, dict) and last.get("ready"):
                    return
            except OSError as exc:
                last = exc
            time.sleep(0.05)  # polling the daemon's status op; it cannot call us back
        raise SimError(f"{self.node.name}: daemon not ready after {timeout}s ({last}):\n{self.log_tail()}")

    # ------------------------------------------------------------------ CNI, as a runtime
    def network(self) -> NetworkList:
        files = conf_files(self.conf_dir)
        if not files:
            raise SimError(f"{self.conf_dir}: no CNI configuration")
        return network_list_from_file(files[0])

    def _runner(self) -> ChainRunner:
        if self.runner is None:
            registry = Registry()
            registry.disabled = frozenset(registry.types())  # a runtime execs every plugin
            self.runner = ChainRunner(Invoker(registry, timeout=120), self.cni_path,
                                      ResultCache(self.root / "runtime-cache"))
        return self.runner

    def _rt(self, pod: Pod, netns: str, capability_args: dict[str, Any] | None = None) -> RuntimeConf:
        args = CniArgs.parse(f"IgnoreUnknown=1;K8S_POD_NAMESPACE={pod.namespace};K8S_POD_NAME={pod.name};"
                             f"K8S_POD_INFRA_CONTAINER_ID={pod.container_id}")
        return RuntimeConf(container_id=pod.container_id, netns=netns, ifname="eth0", args=args,
                           capability_args=capability_args or {})

    def add(self, pod: Pod, port_mappings: list[dict[str, Any]]) -> dict[str, Any]:
        caps: dict[str, Any] = {POD_ANNOTATIONS: dict(pod.annotations)}
        if port_mappings:
            caps["portMappings"] = port_mappings
        net, runner = self.network(), self._runner()
        rt = self._rt(pod, netns_path(pod.netns), caps)
        result = in_netns(netns_path(self.node.netns), lambda: runner.add(net, rt))
        return dict(result.to_wire())

    def delete(self, pod: Pod, *, netns_gone: bool = False) -> None:
        net, runner = self.network(), self._runner()
        # A runtime that lost the namespace passes an empty CNI_NETNS (kubelet) or the stale path
        # (containerd); the stale path is the harder case for the plugin.
        rt = self._rt(pod, netns_path(pod.netns))
        in_netns(netns_path(self.node.netns), lambda: runner.delete(net, rt))

    def close(self) -> None:
        self.runner = None
