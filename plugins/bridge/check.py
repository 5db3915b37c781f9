"""CHECK: compare what prevResult says against the kernel and report every difference."""

from __future__ import annotations

import ipaddress

from metacni.firewall.spoofcheck import check_spoofcheck
from metacni.kernel import addresses, links, netns, routes
from metacni.netlink.rtnl import rtnl
from metacni.plugin import CHECK, CNIError, Code, Request

from .config import BridgeConf
from .naming import host_veth_name


def check(request: Request, conf: BridgeConf) -> None:
    if conf.has_ipam:
        request.ipam(CHECK)
    prev = request.prev_result
    if prev is None:
        raise CNIError(Code.INVALID_CONFIG, "required prevResult missing",
                       f"bridge CHECK on network {conf.network!r} needs prevResult")
    problems: list[str] = []
    cont = next((i for i in prev.interfaces if i.name == request.ifname and i.sandbox), None)
    if cont is None:
        problems.append(f"prevResult has no interface {request.ifname!r} with a sandbox")
    elif cont.sandbox != request.netns:
        problems.append(f"interface {request.ifname} sandbox {cont.sandbox!r} != CNI_NETNS {request.netns!r}")

    with rtnl() as ipr:
        br = links.get_link(ipr, conf.bridge)
        if br is None:
            problems.append(f"bridge {conf.bridge!r} not found")
        else:
            if br.kind != "bridge":
                problems.append(f"{conf.bridge!r} is a {br.kind or 'plain'} link, not a bridge")
            prev_br = next((i for i in prev.interfaces if i.name == conf.bridge and not i.sandbox), None)
            if prev_br and prev_br.mac and prev_br.mac.lower() != br.mac.lower():
                problems.append(f"bridge {conf.bridge} MAC is {br.mac}, prevResult says {prev_br.mac}")
            if conf.promisc != br.promisc:
                problems.append(f"bridge {conf.bridge} promiscuous mode is {br.promisc}, "
                                f"config says {conf.promisc}")

        with netns.enter(request.netns), rtnl() as pod:
            link = links.get_link(pod, request.ifname)
            if link is None:
                problems.append(f"interface {request.ifname} not found in {request.netns}")
                raise _report(conf, request, problems)
            if link.kind != "veth":
                problems.append(f"{request.ifname} is a {link.kind or 'plain'} link, not a veth")
            if cont and cont.mac and cont.mac.lower() != link.mac.lower():
                problems.append(f"{request.ifname} MAC is {link.mac}, prevResult says {cont.mac}")
            have_addrs = set(addresses.list_addresses(pod, link.index))
            have_routes = routes.list_routes(pod, link.index)

        peer = links.get_link(ipr, index=link.peer_index) if link.peer_index else None
        if peer is None or peer.kind != "veth":
            problems.append(f"host end of {request.ifname} not found")
        elif br is not None and peer.master != br.index:
            problems.append(f"host veth {peer.name} is not a port of {conf.bridge}")

    if conf.mac_spoof_check:
        mac = cont.mac if cont and cont.mac else link.mac
        host_name = host_veth_name(conf.network, request.container_id, request.ifname)
        problems += check_spoofcheck(conf.network, request.container_id, request.ifname, host_name, mac)

    cont_index = prev.interfaces.index(cont) if cont else None
    for ip in prev.ips:
        if ip.interface is not None and ip.interface != cont_index:
            continue
        if ipaddress.ip_interface(ip.address) not in have_addrs:
            problems.append(f"address {ip.address} missing on {request.ifname}")
    for r in prev.routes:
        dst = ipaddress.ip_network(r.dst, strict=False)
        gw = ipaddress.ip_address(r.gw) if r.gw else None
        if not any(h.dst == dst and (gw is None or h.gw == gw) for h in have_routes):
            via = f" via {gw}" if gw else ""
            problems.append(f"route {r.dst}{via} missing on {request.ifname}")
    if problems:
        raise _report(conf, request, problems)


def _report(conf: BridgeConf, request: Request, problems: list[str]) -> CNIError:
    return CNIError(Code.INTERNAL, "bridge CHECK failed",
                    f"network {conf.network!r}, container {request.container_id}: " + "; ".join(problems))
