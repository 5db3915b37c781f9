"""The demo's dynamic-attachment step (issue #19): edit a running pod's networks annotation
and watch its node's daemon (``--dynamic-networks``) attach, then detach, the network.

Every wait is on an observed condition with a deadline; traffic is real (ICMP between pods
over the new interface)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .host import sh
from .plan import SECOND_NAD
from .traffic import ping

if TYPE_CHECKING:
    from .cluster import Cluster, Pod

NETWORKS = "k8s.v1.cni.cncf.io/networks"


@dataclass
class StepReport:
    lines: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    def check(self, ok: bool, what: str) -> None:
        self.lines.append(f"  {'ok  ' if ok else 'FAIL'} {what}")
        if not ok:
            self.failures.append(what)


def _wait(check: Callable[[], Any], timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.1)  # observing another process (the daemon) through the API: no event to wait on


def _links(pod: Pod) -> set[str]:
    return {str(e["ifname"]) for e in json.loads(sh("ip", "-j", "link", "show", netns=pod.netns).stdout or "[]")}


def _net1(cluster: Cluster, pod: Pod) -> str | None:
    for entry in cluster.network_status(pod):
        if entry.get("interface") == "net1" and entry.get("ips"):
            return str(entry["ips"][0])
    return None


def hotplug(cluster: Cluster, pod: Pod, peer: Pod, timeout: float = 30.0) -> StepReport:
    """Add ``SECOND_NAD`` to ``pod``'s annotation, check net1 and traffic with ``peer`` (already
    on that network), remove it again, check it is gone."""
    report = StepReport()
    report.lines.append(f"dynamic attachment: {pod.name} gets networks={SECOND_NAD!r} while running")
    cluster.api.patch_pod_annotations(pod.namespace, pod.name, {NETWORKS: SECOND_NAD})
    t0 = time.monotonic()
    ip = _wait(lambda: _net1(cluster, pod) if "net1" in _links(pod) else None, timeout)
    report.check(bool(ip), f"net1 appeared with {ip} after {time.monotonic() - t0:.1f}s (network-status lists it)")
    if ip:
        shown = sh("ip", "-br", "addr", "show", "dev", "net1", netns=pod.netns, check=False).stdout.strip()
        report.lines.append(f"  {pod.name}: {shown}")
    else:
        report.lines.append(f"  daemon log of {pod.node.name}: {cluster.runtimes[pod.node.name].log_tail(1500)}")
    peer_ip = _net1(cluster, peer)
    if ip and peer_ip:
        report.check(ping(pod.path, peer_ip), f"{pod.name} net1 -> {peer.name} {peer_ip}")
        report.check(ping(peer.path, ip), f"{peer.name} -> {pod.name} net1 {ip}")
    report.lines.append(f"dynamic attachment: {pod.name}'s annotation emptied")
    cluster.api.patch_pod_annotations(pod.namespace, pod.name, {NETWORKS: None})
    gone = _wait(lambda: "net1" not in _links(pod) and _net1(cluster, pod) is None, timeout)
    report.check(bool(gone), "net1 removed (interface and network-status entry)")
    if ip and peer_ip:
        report.check(not ping(peer.path, ip, timeout=1.0), f"{ip} no longer answers")
    return report
