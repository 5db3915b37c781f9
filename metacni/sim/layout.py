"""Builds the run's namespaces: an underlay router/switch, an "internet" beyond it, and nodes.

    internet (203.0.113.10) -- underlay: router 203.0.113.1 / 192.168.77.1
                                         bridge ul0 (node eth0s: 192.168.77.11, .12, ...)
                                         bridge ul1 (node eth1s: no address; the L2 of net1)

The underlay knows no pod CIDR: pod traffic leaving the cluster only comes back when the node
SNATed it. Nodes route to each other's pod CIDRs themselves (the daemon's host-gw routes).
"""

from __future__ import annotations

from .host import add_netns, ip_batch, sh
from .plan import INTERNET_IP, INTERNET_LINK, INTERNET_ROUTER, UNDERLAY_GW, UNDERLAY_NET, ClusterPlan, NodePlan


def build_underlay(plan: ClusterPlan) -> None:
    ul, inet = plan.underlay, plan.internet
    add_netns(ul)
    add_netns(inet)
    ip_batch([
        "link add ul0 type bridge",
        "link add ul1 type bridge",
        f"addr add {UNDERLAY_GW}/{UNDERLAY_NET.prefixlen} dev ul0",
        "link set ul0 up",
        "link set ul1 up",
        f"link add inet0 type veth peer name eth0 netns {inet}",
        f"addr add {INTERNET_ROUTER}/{INTERNET_LINK.prefixlen} dev inet0",
        "link set inet0 up",
    ], netns=ul)
    ip_batch([
        f"addr add {INTERNET_IP}/{INTERNET_LINK.prefixlen} dev eth0",
        "link set eth0 up",
        f"route add default via {INTERNET_ROUTER}",
    ], netns=inet)
    sh("sysctl", "-qw", "net.ipv4.ip_forward=1", netns=ul)


def build_node(plan: ClusterPlan, node: NodePlan) -> None:
    """A node: eth0 on the underlay (its InternalIP, default route), eth1 on the net1 L2."""
    add_netns(node.netns)
    i = node.index
    ip_batch([
        f"link add n{i} type veth peer name eth0 netns {node.netns}",
        f"link add m{i} type veth peer name eth1 netns {node.netns}",
        f"link set n{i} master ul0",
        f"link set m{i} master ul1",
        f"link set n{i} up",
        f"link set m{i} up",
    ], netns=plan.underlay)
    ip_batch([
        f"addr add {node.ip}/{UNDERLAY_NET.prefixlen} dev eth0",
        "link set eth0 up",
        "link set eth1 up",
        f"route add default via {UNDERLAY_GW}",
    ], netns=node.netns)
    sh("sysctl", "-qw", "net.ipv4.ip_forward=1", netns=node.netns)
