"""What the demo shows: the topology as text, and a connectivity matrix measured with real
traffic, where each cell says whether the receiver saw the address it should have."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from metacni.sim.traffic import ask, ping

from .cluster import Cluster, Pod
from .host import netns_path
from .plan import API_PORT, ECHO_PORT, HOST_PORT, INTERNET_IP, UNDERLAY_GW

OK, NAT, FAIL = "ok", "NAT", "--"


@dataclass
class Cell:
    expected: str  # the source address the receiver must see
    seen: str | None

    @property
    def ok(self) -> bool:
        return self.seen == self.expected

    def text(self) -> str:
        if self.seen is None:
            return FAIL
        return OK if self.ok else f"{NAT} {self.seen}"


@dataclass
class Matrix:
    columns: list[str]
    rows: dict[str, dict[str, Cell]] = field(default_factory=dict)
    extra: list[tuple[str, Cell]] = field(default_factory=list)  # hostPort, net1, ICMP lines

    @property
    def failures(self) -> list[str]:
        out = [f"{r} -> {c}: expected {cell.expected}, saw {cell.seen}" for r, cols in self.rows.items()
               for c, cell in cols.items() if not cell.ok]
        return out + [f"{what}: expected {cell.expected}, saw {cell.seen}" for what, cell in self.extra if not cell.ok]


def net1_ip(cluster: Cluster, pod: Pod) -> str | None:
    for entry in cluster.network_status(pod):
        if entry.get("interface") == "net1" and entry.get("ips"):
            return str(entry["ips"][0])
    return None


def measure(cluster: Cluster, pods: list[Pod], tick: Callable[[], None] = lambda: None) -> Matrix:
    """TCP from every pod, node and the internet to every pod (and pods to the internet)."""
    m = Matrix(columns=[p.name for p in pods] + ["internet"])
    sources: list[tuple[str, str, Callable[[Pod], str]]] = [
        (p.name, p.path, lambda dst, p=p: p.ip) for p in pods]  # type: ignore[misc]
    for node in cluster.plan.nodes:
        sources.append((node.name, netns_path(node.netns),
                        lambda dst, n=node: n.gateway if dst.node is n else n.ip))  # type: ignore[misc]
    for name, path, expect in sources:
        row = m.rows.setdefault(name, {})
        for dst in pods:
            if dst.name != name:
                row[dst.name] = Cell(expect(dst), ask(path, "tcp", dst.ip, ECHO_PORT, deadline=3))
            tick()
        pod = next((p for p in pods if p.name == name), None)
        if pod is not None:
            row["internet"] = Cell(pod.node.ip, ask(path, "tcp", INTERNET_IP, ECHO_PORT, deadline=3))
    internet = netns_path(cluster.plan.internet)
    for pod in pods:
        if pod.host_port:
            m.extra.append((f"internet -> {pod.node.ip}:{pod.host_port} (hostPort of {pod.name})",
                            Cell(INTERNET_IP, ask(internet, "tcp", pod.node.ip, pod.host_port, deadline=3))))
            seen = ask(pod.path, "tcp", pod.node.ip, pod.host_port, deadline=3)
            m.extra.append((f"{pod.name} -> {pod.node.ip}:{pod.host_port} (itself, via its hostPort)",
                            Cell(seen or "an answer", seen)))
    on_net1 = [(p, net1_ip(cluster, p)) for p in pods if p.annotations]
    for src, src_ip in on_net1:
        for dst, dst_ip in on_net1:
            if src is not dst and src_ip and dst_ip:
                m.extra.append((f"{src.name} net1 {src_ip} -> {dst.name} net1 {dst_ip}",
                                Cell(src_ip, ask(src.path, "tcp", dst_ip, ECHO_PORT, deadline=3))))
                tick()
    for pod in pods[:1]:
        for dst in pods[1:]:
            m.extra.append((f"{pod.name} -> {dst.name} ICMP echo",
                            Cell("reply", "reply" if ping(pod.path, dst.ip, timeout=3) else None)))
    return m


def table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in [headers, *rows]) for i in range(len(headers))]
    line = "+" + "+".join("-" * (w + 2) for w in widths) + "+"
    fmt = lambda r: "| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |"  # noqa: E731
    return "\n".join([line, fmt(headers), line, *map(fmt, rows), line])


def render_matrix(m: Matrix) -> str:
    rows = [[src, *[cells[c].text() if c in cells else "" for c in m.columns]] for src, cells in m.rows.items()]
    out = ["Connectivity matrix (TCP, from row to column):",
           table(["from \\ to", *m.columns], rows),
           f"  {OK}: the receiver saw the sender's own address (pods, nodes: no NAT; to the internet: SNAT "
           "to the node's address)",
           f"  {NAT} x: the receiver saw x instead; {FAIL}: no answer", ""]
    for what, cell in m.extra:
        out.append(f"  [{'ok' if cell.ok else 'FAIL'}] {what}: saw {cell.seen or 'nothing'}")
    return "\n".join(out)


def render_topology(cluster: Cluster, pods: list[Pod]) -> str:
    p = cluster.plan
    out = [f"Simulated cluster {p.tag} (firewall backend {p.backend}); run directory {p.run_dir}",
           f"  internet   netns {p.internet}: {INTERNET_IP}, beyond the underlay router",
           f"  underlay   netns {p.underlay}: router {UNDERLAY_GW}, bridges ul0 (nodes) and ul1 (net1), "
           f"fake API http://{UNDERLAY_GW}:{API_PORT}",
           ]
    for node in p.nodes:
        out.append(f"  {node.name:<10} netns {node.netns}: eth0 {node.ip}, pod CIDR {node.pod_cidr} on cni0 "
                   f"{node.gateway}, eth1 -> net1")
        for pod in (x for x in pods if x.node is node):
            parts = [f"eth0 {pod.ip}"]
            n1 = net1_ip(cluster, pod)
            if n1:
                parts.append(f"net1 {n1} (macvlan on eth1)")
            if pod.host_port:
                parts.append(f"hostPort {node.ip}:{pod.host_port} -> {ECHO_PORT}")
            out.append(f"    pod {pod.name:<8} netns {pod.netns}: " + ", ".join(parts))
    return "\n".join(out)


DEMO_PODS: list[dict[str, Any]] = [
    {"name": "web-1", "node": "node-1", "host_port": HOST_PORT, "container_port": ECHO_PORT},
    {"name": "api-1", "node": "node-1", "networks": "blue"},
    {"name": "api-2", "node": "node-2", "networks": "blue"},
    {"name": "db-1", "node": "node-3"},
    {"name": "cache-1", "node": "node-3", "networks": "default/blue"},
]
