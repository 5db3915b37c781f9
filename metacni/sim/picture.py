"""An SVG picture of the simulated cluster (hand-written SVG: no dependencies, opens in any
browser): the internet, the underlay's two bridges, each node with its cni0 bridge and pods,
every interface with its address."""

from __future__ import annotations

from html import escape

from .cluster import Cluster, Pod
from .plan import INTERNET_IP, INTERNET_ROUTER, NET1_SUBNET, UNDERLAY_GW

NODE_W, POD_W, POD_H, GAP = 300, 124, 74, 30
COLORS = {"internet": "#fde2e2", "underlay": "#e8eefc", "node": "#eef7ee", "pod": "#ffffff",
          "eth0": "#2b6cb0", "net1": "#b7791f"}


def _text(x: float, y: float, s: str, size: int = 12, weight: str = "normal", anchor: str = "start",
          color: str = "#222") -> str:
    return (f'<text x="{x:.0f}" y="{y:.0f}" font-size="{size}" font-weight="{weight}" text-anchor="{anchor}" '
            f'fill="{color}" font-family="DejaVu Sans, Arial, sans-serif">{escape(s)}</text>')


def _rect(x: float, y: float, w: float, h: float, fill: str, stroke: str = "#555", rx: int = 8) -> str:
    return f'<rect x="{x:.0f}" y="{y:.0f}" width="{w:.0f}" height="{h:.0f}" rx="{rx}" fill="{fill}" stroke="{stroke}"/>'


def _line(x1: float, y1: float, x2: float, y2: float, color: str, width: int = 2, dash: str = "") -> str:
    d = f' stroke-dasharray="{dash}"' if dash else ""
    return f'<line x1="{x1:.0f}" y1="{y1:.0f}" x2="{x2:.0f}" y2="{y2:.0f}" stroke="{color}" stroke-width="{width}"{d}/>'


def render(cluster: Cluster, pods: list[Pod], net1: dict[str, str]) -> str:
    """``net1`` maps pod name -> its net1 address (pods without one are left out)."""
    plan = cluster.plan
    n = len(plan.nodes)
    per_node = [[p for p in pods if p.node is node] for node in plan.nodes]
    rows = max([len(x) for x in per_node] + [1])
    width = GAP + n * (NODE_W + GAP)
    ul_y, ul0_y, ul1_y = 120, 175, 200
    node_y = 250
    node_h = 180 + rows * (POD_H + 20)
    height = node_y + node_h + 60
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}">', f'<rect width="{width}" height="{height}" fill="#fafafa"/>',
           _text(GAP, 28, f"metacni demo - simulated cluster {plan.tag} (firewall backend {plan.backend})", 16,
                 "bold")]
    cx = width / 2
    out += [_rect(cx - 170, 45, 340, 48, COLORS["internet"]),
            _text(cx, 65, f"internet  netns {plan.internet}", 12, "bold", "middle"),
            _text(cx, 83, f"eth0 {INTERNET_IP}", 11, anchor="middle"),
            _line(cx, 93, cx, ul_y, "#444")]
    out += [_rect(GAP / 2, ul_y, width - GAP, 100, COLORS["underlay"]),
            _text(GAP, ul_y + 18, f"underlay  netns {plan.underlay}: router {UNDERLAY_GW} / {INTERNET_ROUTER}, "
                  "fake Kubernetes API", 12, "bold"),
            _line(GAP, ul0_y, width - GAP, ul0_y, COLORS["eth0"], 6),
            _text(width - GAP, ul0_y - 6, "bridge ul0 (node network)", 11, anchor="end", color=COLORS["eth0"]),
            _line(GAP, ul1_y, width - GAP, ul1_y, COLORS["net1"], 6),
            _text(GAP + 70, ul1_y + 16, f"bridge ul1 (net1 L2, {NET1_SUBNET})", 11, color=COLORS["net1"])]
    for i, (node, node_pods) in enumerate(zip(plan.nodes, per_node, strict=True)):
        x = GAP + i * (NODE_W + GAP)
        drop = x + NODE_W - 20  # where eth1 (net1) enters the node, clear of the header text
        out += [_rect(x, node_y, NODE_W, node_h, COLORS["node"]),
                _text(x + 10, node_y + 20, node.name, 13, "bold"),
                _text(x + 10, node_y + 36, f"netns {node.netns}", 10, color="#555"),
                _text(x + 10, node_y + 53, f"eth0 {node.ip}", 11),
                _text(x + 10, node_y + 69, f"pod CIDR {node.pod_cidr}", 11),
                _text(x + 10, node_y + 85, "metacni daemon + shim, host-gw routes", 10, color="#555"),
                _line(x + 40, ul0_y, x + 40, node_y, COLORS["eth0"]),
                _text(x + 44, node_y - 8, "eth0", 10, color=COLORS["eth0"]),
                _line(drop, ul1_y, drop, node_y, COLORS["net1"], 2, "5,3"),
                _text(drop + 4, node_y - 8, "eth1", 10, color=COLORS["net1"])]
        br_y = node_y + 112
        bus_x = x + 25
        out += [_line(x + 15, br_y, x + NODE_W - 90, br_y, COLORS["eth0"], 5),
                _text(x + 15, br_y - 6, f"bridge cni0 {node.gateway}", 10, color=COLORS["eth0"])]
        if node_pods:  # one veth per pod: a vertical run left of the pods, a stub into each
            last_mid = br_y + 30 + (len(node_pods) - 1) * (POD_H + 20) + POD_H / 2
            out.append(_line(bus_x, br_y, bus_x, last_mid, COLORS["eth0"]))
        for j, pod in enumerate(node_pods):
            py = br_y + 30 + j * (POD_H + 20)
            px = x + 45
            out += [_line(bus_x, py + POD_H / 2, px, py + POD_H / 2, COLORS["eth0"]),
                    _rect(px, py, POD_W + 60, POD_H, COLORS["pod"], rx=6),
                    _text(px + 8, py + 17, f"pod {pod.name}", 12, "bold"),
                    _text(px + 8, py + 34, f"eth0 {pod.ip}", 11, color=COLORS["eth0"])]
            if pod.name in net1:
                out += [_text(px + 8, py + 50, f"net1 {net1[pod.name]} (macvlan)", 11, color=COLORS["net1"]),
                        _line(px + POD_W + 60, py + 46, drop, py + 46, COLORS["net1"], 2, "5,3"),
                        _line(drop, node_y, drop, py + 46, COLORS["net1"], 2, "5,3")]
            if pod.host_port:
                out.append(_text(px + 8, py + 66, f"hostPort {node.ip}:{pod.host_port}", 10, color="#444"))
    out.append(_text(GAP, height - 20, "solid blue: primary network (eth0, bridge + host-local + portmap + masq + "
                     "forward);  dashed amber: net1 (NetworkAttachmentDefinition, macvlan)", 11, color="#444"))
    out.append("</svg>")
    return "\n".join(out) + "\n"
