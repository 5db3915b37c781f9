"""The simulated cluster: build, attach pods as a runtime would, observe, tear down."""

from __future__ import annotations

import json
import socket
import sys
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from metacni.sim.traffic import in_netns

from . import host, layout, netconf
from .api import Api
from .host import SimError, netns_path, sh
from .plan import API_PORT, SECOND_NAD, UNDERLAY_GW, ClusterPlan, NodePlan
from .runtime import NodeRuntime

Progress = Callable[[str], None]
NETWORKS = "k8s.v1.cni.cncf.io/networks"
NETWORK_STATUS = "k8s.v1.cni.cncf.io/network-status"


@dataclass
class Pod:
    name: str
    namespace: str
    node: NodePlan
    netns: str
    container_id: str
    annotations: dict[str, str] = field(default_factory=dict)
    host_port: int | None = None
    result: dict[str, Any] = field(default_factory=dict)

    @property
    def path(self) -> str:
        return netns_path(self.netns)

    @property
    def ip(self) -> str:
        return str(self.result["ips"][0]["address"]).split("/")[0]


class Cluster:
    """One run. ``up`` builds it, ``down`` removes it (idempotent, also after a failed ``up``)."""

    def __init__(self, plan: ClusterPlan, progress: Progress | None = None) -> None:
        self.plan = plan
        self.progress = progress or (lambda msg: None)
        self.api = Api(f"http://{UNDERLAY_GW}:{API_PORT}", plan.underlay)
        self.runtimes: dict[str, NodeRuntime] = {}
        self.pods: dict[str, Pod] = {}
        self.pids: list[int] = []
        self.procs: list[Any] = []

    # ------------------------------------------------------------------ state
    @property
    def kubeconfig(self) -> Path:
        return self.plan.run_dir / "kubeconfig"

    def node_dir(self, node: NodePlan) -> Path:
        return self.plan.run_dir / node.name

    def state(self) -> dict[str, Any]:
        p = self.plan
        return {"tag": p.tag, "run_dir": str(p.run_dir), "state_file": str(p.state_file), "pids": self.pids,
                "backend": p.backend, "nodes": [n.name for n in p.nodes], "created": time.time()}

    def _save(self) -> None:
        host.write_state(self.plan.state_file, self.state())

    # ------------------------------------------------------------------ lifecycle
    def up(self) -> Cluster:
        p = self.plan
        p.run_dir.mkdir(parents=True, exist_ok=False, mode=0o700)
        self._save()  # before anything exists, so a crash at any point can be cleaned up
        self.progress(f"underlay and internet namespaces ({p.underlay}, {p.internet})")
        layout.build_underlay(p)
        for node in p.nodes:
            self.progress(f"node {node.name}: namespace {node.netns}, {node.ip}, pod CIDR {node.pod_cidr}")
            layout.build_node(p, node)
        self.progress("fake Kubernetes API server (nodes with pod CIDRs, the net1 NetworkAttachmentDefinition)")
        self._start_api()
        self.api.create_nad("default", SECOND_NAD, netconf.second_network(p.run_dir / "net1-ipam"))
        self.progress(f"metacni daemons (one per node, firewall backend {p.backend})")
        for node in p.nodes:
            self._install_node(node)
        for node in p.nodes:
            self.runtimes[node.name].wait_ready()
        self.progress("waiting for host-gw routes between nodes")
        for node in p.nodes:
            self.wait_routes(node)
        return self

    def down(self) -> list[str]:
        for rt in self.runtimes.values():
            rt.close()
        removed = host.teardown(self.state())
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
        self.procs.clear()
        return removed

    def __enter__(self) -> Cluster:
        try:
            return self.up()
        except BaseException:
            self.down()
            raise

    def __exit__(self, *exc: object) -> None:
        self.down()

    def _spawn(self, argv: list[str], log: Path) -> None:
        proc = host.spawn(argv, log)
        self.procs.append(proc)
        self.pids.append(proc.pid)
        self._save()

    def _start_api(self) -> None:
        p = self.plan
        nodes = [f"--node={n.name},{n.pod_cidr},{n.ip}" for n in p.nodes]
        self._spawn(["ip", "netns", "exec", p.underlay, sys.executable, "-m", "metacni.sim.fakeapi",
                     "--host", UNDERLAY_GW, "--port", str(API_PORT), "--kubeconfig", str(self.kubeconfig),
                     "--bookmark-interval", "2", *nodes], p.run_dir / "api.log")
        deadline = time.monotonic() + 30
        while True:
            if self.procs[-1].poll() is not None:
                raise SimError(f"fake API server exited: {(p.run_dir / 'api.log').read_text()[-2000:]}")
            if self.kubeconfig.exists() and _port_open(p.underlay, UNDERLAY_GW, API_PORT):
                return
            if time.monotonic() > deadline:
                raise SimError("fake API server did not come up in 30s")
            time.sleep(0.05)  # polling a child's start-up; it has no readiness channel to us

    def _install_node(self, node: NodePlan) -> None:
        d = self.node_dir(node)
        rt = NodeRuntime.prepare(node, d, self.kubeconfig, self.plan.backend)
        self.runtimes[node.name] = rt
        self._spawn(rt.daemon_argv(), d / "daemon.stderr")

    def wait_routes(self, node: NodePlan, timeout: float = 30.0) -> None:
        want = {n.pod_cidr for n in self.plan.nodes if n is not node}
        deadline = time.monotonic() + timeout
        while True:
            have = {r.get("dst") for r in json.loads(sh("ip", "-j", "route", netns=node.netns).stdout or "[]")}
            if want <= have:
                return
            if time.monotonic() > deadline:
                raise SimError(f"{node.name}: no routes to {sorted(want - have)} after {timeout}s "
                               f"(daemon log: {self.runtimes[node.name].log_tail()})")
            time.sleep(0.1)  # the daemon's reconciler has no event we can wait on from here

    # ------------------------------------------------------------------ pods
    def add_pod(self, name: str, node: NodePlan | str, *, networks: str | None = None,
                host_port: int | None = None, container_port: int = 8080, namespace: str = "default") -> Pod:
        """Create the Pod object, its namespace, and ADD it through the shim, as kubelet + the
        container runtime would: K8S_POD_* in CNI_ARGS, port mappings and annotations in
        runtimeConfig."""
        n = self.plan.node(node) if isinstance(node, str) else node
        annotations = {NETWORKS: networks} if networks else {}
        pod = Pod(name, namespace, n, self.plan.pod_netns(name), uuid.uuid4().hex, annotations, host_port)
        self.api.create_pod(namespace, name, n.name, annotations)
        host.add_netns(pod.netns)
        self.pods[name] = pod
        mappings = ([{"hostPort": host_port, "containerPort": container_port, "protocol": proto}
                     for proto in ("tcp", "udp")] if host_port else [])
        pod.result = self.runtimes[n.name].add(pod, mappings)
        return pod

    def del_pod(self, pod: Pod, *, netns_first: bool = False) -> None:
        """DEL as the runtime does on pod removal; ``netns_first`` removes the namespace before
        the DEL (a runtime that lost it, or a node reboot)."""
        if netns_first:
            host.del_netns(pod.netns)
        self.runtimes[pod.node.name].delete(pod, netns_gone=netns_first)
        if not netns_first:
            host.del_netns(pod.netns)
        self.api.delete_pod(pod.namespace, pod.name)
        self.pods.pop(pod.name, None)

    def add_pods(self, specs: list[dict[str, Any]], workers: int = 6) -> list[Pod]:
        with ThreadPoolExecutor(workers) as pool:
            return list(pool.map(lambda kw: self.add_pod(**kw), specs))

    def network_status(self, pod: Pod) -> list[dict[str, Any]]:
        """The pod's network-status, once its node's daemon has written what it queued."""
        if not self.runtimes[pod.node.name].status_written():
            raise SimError(f"{pod.node.name}: network-status writes still pending "
                           f"(daemon log: {self.runtimes[pod.node.name].log_tail()})")
        obj = self.api.get_pod(pod.namespace, pod.name) or {}
        text = (obj.get("metadata", {}).get("annotations") or {}).get(NETWORK_STATUS)
        return list(json.loads(text)) if text else []


def _port_open(netns: str, addr: str, port: int) -> bool:
    def probe() -> bool:
        with socket.socket() as s:
            s.settimeout(0.5)
            return s.connect_ex((addr, port)) == 0

    return bool(in_netns(netns_path(netns), probe)) if Path(netns_path(netns)).exists() else False
