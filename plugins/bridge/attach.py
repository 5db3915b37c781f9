"""ADD: bridge -> veth (peer born in the pod) -> IPAM -> gateway -> pod addresses and routes.

The ordering follows the reference plugin so failures look the same (a taken CNI_IFNAME
fails before IPAM is asked for anything). Each step that creates something pushes its undo;
a failure runs the undos in reverse, so a failed ADD leaves no veth and no lease behind.

Netlink round trips of a usual ADD (stdlib rtnetlink, several requests per send): the bridge
lookup; the veth creation with port flags and read-back; the gateway address on the bridge;
everything inside the pod (link up, addresses, routes) in one batch; the operstate wait.
"""

from __future__ import annotations

import contextlib
import errno
import ipaddress
from collections.abc import Callable
from ipaddress import IPv4Address, IPv6Address
from logging import getLogger

from metacni.firewall.masq import add_masquerade, del_masquerade
from metacni.firewall.spoofcheck import add_spoofcheck, del_spoofcheck
from metacni.kernel import addresses, links, netns, reaper, routes, sysctl
from metacni.netlink import rtnl as nl
from metacni.netlink.rtnl import EEXIST, NetlinkError, Rtnl, is_errno, rtnl
from metacni.plugin import ADD, DEL, CNIError, Code, Interface, IPConfig, Request, Result, Route

from . import tenant as tenancy
from .config import BridgeConf
from .naming import host_veth_name, random_mac

log = getLogger(__name__)
IPAddress = IPv4Address | IPv6Address
BRIDGE, HOST, CONTAINER = 0, 1, 2  # interface indexes in the result


def add(request: Request, conf: BridgeConf) -> Result:
    if not netns.exists(request.netns):
        raise CNIError(Code.INVALID_ENVIRONMENT, "network namespace not found",
                       f"CNI_NETNS {request.netns!r} does not exist (network {conf.network!r})")
    undo: list[tuple[str, Callable[[], object]]] = []
    try:
        with rtnl() as ipr:
            return _add(request, conf, ipr, undo)
    except BaseException:
        for what, fn in reversed(undo):
            try:
                fn()
            except Exception:
                log.exception("bridge ADD rollback step %r failed (network %s, container %s)",
                              what, conf.network, request.container_id)
        raise


def _add(request: Request, conf: BridgeConf, ipr: Rtnl,
         undo: list[tuple[str, Callable[[], object]]]) -> Result:
    tenant = tenancy.of(request)
    if tenant is not None:
        tenancy.check_bridge(ipr, conf, tenant, request)
    br, created = _bridge(ipr, conf, tenant, request)
    if created and tenant is not None:  # a refused NAD leaves no bridge behind
        undo.append(("delete the NAD's new bridge", lambda: tenancy.delete_if_unused(br.index)))
    host_name = host_veth_name(conf.network, request.container_id, request.ifname)
    host_mac, cont_mac = random_mac(), conf.mac or random_mac()
    reaper.wait_for(host_name)  # the same attachment DELeted just before: its pair must be gone first
    for attempt in (0, 1):
        try:
            host = links.create_veth_in_netns(ipr, host_name, request.ifname, request.netns, master=br.index,
                                              mtu=conf.mtu, host_mac=host_mac, peer_mac=cont_mac,
                                              hairpin=conf.hairpin, isolated=conf.port_isolation)
            break
        except links.LinkExistsError:
            # A pair a crashed daemon detached for deletion but never deleted: finish that DEL.
            left = links.get_link(ipr, host_name)
            if attempt or left is None or left.alias != reaper.MARK:
                raise _exists_error(request, host_name, conf) from None
            links.delete_link(ipr, host_name)
    undo.append(("delete host veth", lambda: _delete_host_veth(host_name)))
    if conf.vlan:
        links.set_access_vlan(ipr, host.index, conf.vlan, conf.preserve_default_vlan)
    if conf.mac_spoof_check:
        _spoofcheck(request, conf, host_name, cont_mac, undo)

    ipam = request.ipam(ADD) if conf.has_ipam else None
    if ipam is not None:
        undo.append(("IPAM DEL", lambda: request.ipam(DEL)))
    result = _result(request, conf, ipam, br.name, br.mac, host_name, host_mac, cont_mac)
    if conf.is_gateway:
        if tenant is not None:
            tenancy.check_gateways(ipr, conf, tenant, request, br.index, result.ips)
        _gateways(ipr, conf, br, result.ips)
    _configure_pod(request, conf, result, host.peer_index)
    if conf.ip_masq and result.ips:
        _masquerade(request, conf, result, undo)
    if not conf.disable_container_interface:
        links.wait_oper_up(ipr, host.index)
    return result


def _masquerade(request: Request, conf: BridgeConf, result: Result,
                undo: list[tuple[str, Callable[[], object]]]) -> None:
    """ipMasq: the shared masquerade machinery, keyed by the attachment so DEL needs no IPs."""
    undo.append(("masquerade DEL", lambda: del_masquerade(conf.network, request.container_id, request.ifname,
                                                          backend=conf.ip_masq_backend)))
    add_masquerade(conf.network, request.container_id, request.ifname, [ip.address for ip in result.ips],
                   backend=conf.ip_masq_backend)


def _spoofcheck(request: Request, conf: BridgeConf, host_name: str, mac: str,
                undo: list[tuple[str, Callable[[], object]]]) -> None:
    """macspoofchk: frames entering the bridge from the host veth must carry the pod's MAC.
    Keyed by the attachment, so DEL and GC need neither the netns nor the veth."""
    undo.append(("spoof check DEL", lambda: del_spoofcheck(conf.network, request.container_id, request.ifname)))
    add_spoofcheck(conf.network, request.container_id, request.ifname, host_name, mac)


def _bridge(ipr: Rtnl, conf: BridgeConf, tenant: tenancy.Tenant | None,
            request: Request) -> tuple[links.LinkInfo, bool]:
    """The bridge, up; whether this call created it."""
    try:
        br, created = links.ensure_bridge(ipr, conf.bridge, conf.mtu, random_mac())
    except ValueError as exc:
        raise CNIError(Code.INVALID_CONFIG, "invalid bridge config",
                       f"network {conf.network!r}: bridge: {exc}") from None
    if tenant is not None:
        tenancy.claim(ipr, br, created, conf, tenant, request)
    if created and sysctl.exists("net", "ipv6", "conf", br.name, "accept_ra"):
        sysctl.ensure(0, "net", "ipv6", "conf", br.name, "accept_ra")
    if conf.promisc and not br.promisc:
        links.set_promisc(ipr, br.index, True)
    if conf.vlan:
        try:
            links.set_vlan_filtering(ipr, br.index)
        except NetlinkError as exc:
            if not is_errno(exc, errno.EOPNOTSUPP):
                raise
            raise CNIError(Code.INVALID_CONFIG, "bridge VLAN filtering unavailable",
                           f"network {conf.network!r}: vlan={conf.vlan} needs a kernel with "
                           "CONFIG_BRIDGE_VLAN_FILTERING") from None
    return br, created


def _exists_error(request: Request, host_name: str, conf: BridgeConf) -> CNIError:
    with netns.enter(request.netns), rtnl() as pod:
        taken = links.get_link(pod, request.ifname) is not None
    if taken:
        return CNIError(Code.INVALID_ENVIRONMENT, "container interface already exists",
                        f"container veth name ({request.ifname!r}) already exists in {request.netns} "
                        f"(network {conf.network!r}, container {request.container_id})")
    return CNIError(Code.INVALID_ENVIRONMENT, "host veth already exists",
                    f"{host_name} for container {request.container_id} ifname {request.ifname} already "
                    f"exists on the node (network {conf.network!r}); was the attachment ADDed twice?")


def _delete_host_veth(name: str) -> None:
    with rtnl() as ipr:
        links.delete_link(ipr, name)


def _result(request: Request, conf: BridgeConf, ipam: Result | None, br_name: str, br_mac: str,
            host_name: str, host_mac: str, cont_mac: str) -> Result:
    """The reference result: [bridge, host veth, container veth]; every IP on index 2; the
    gateway filled in when isGateway; a default route per family when isDefaultGateway."""
    ips: list[IPConfig] = []
    result_routes: list[Route] = list(ipam.routes) if ipam else []
    defaults_done: set[int] = set()
    for ip in ipam.ips if ipam else []:
        iface = ipaddress.ip_interface(ip.address)
        gateway = ip.gateway
        if gateway is None and conf.is_gateway:
            gateway = str(iface.network.network_address + 1)
        ips.append(IPConfig(address=ip.address, gateway=gateway, interface=CONTAINER))
        fam = iface.version
        if conf.is_default_gateway and fam not in defaults_done and gateway is not None:
            default = "0.0.0.0/0" if fam == 4 else "::/0"
            if not any(r.dst == default and r.gw for r in result_routes):
                result_routes.append(Route(dst=default, gw=gateway))
            defaults_done.add(fam)
    dns = conf.dns if conf.dns is not None else (ipam.dns if ipam else None)
    return request.result(
        interfaces=[Interface(name=br_name, mac=br_mac), Interface(name=host_name, mac=host_mac),
                    Interface(name=request.ifname, mac=cont_mac, sandbox=request.netns)],
        ips=ips, routes=result_routes, **({"dns": dns} if dns is not None else {}),
    )


def _gateways(ipr: Rtnl, conf: BridgeConf, br: links.LinkInfo, ips: list[IPConfig]) -> None:
    """Put each gateway on the bridge (with the pod's prefix) and enable forwarding.

    The addresses are added first, in one batch: EEXIST (the usual case, every pod after the
    first) needs no address dump. Only a fresh add looks for conflicts: another IPv4 address,
    or an overlapping IPv6 one, is an error unless forceAddress, which replaces it (the
    reference's rule). Parallel ADDs adding the same gateway both succeed.
    """
    wanted = [ipaddress.ip_interface(f"{ip.gateway}/{ipaddress.ip_interface(ip.address).network.prefixlen}")
              for ip in ips if ip.gateway]
    results = ipr.batch([addresses.add_address_request(br.index, gw) for gw in wanted],
                        [f"add gateway {gw} to {br.name}" for gw in wanted])
    fresh = []
    for gw, res in zip(wanted, results, strict=True):
        if isinstance(res, NetlinkError):
            if not is_errno(res, EEXIST):
                raise res
        else:
            fresh.append(gw)
    for gw in fresh:
        for other in addresses.list_addresses(ipr, br.index, gw.version):
            if other in wanted or not (gw.version == 4 or other.network.overlaps(gw.network)):
                continue
            if not conf.force_address:
                with contextlib.suppress(NetlinkError):
                    addresses.delete_address(ipr, br.index, gw)
                raise CNIError(Code.INVALID_CONFIG, "bridge address conflict",
                               f"network {conf.network!r}: {br.name!r} already has an IP address "
                               f"different from {gw} ({other}); set forceAddress to replace it")
            with contextlib.suppress(NetlinkError):
                addresses.delete_address(ipr, br.index, other)
    for version in {w.version for w in wanted}:
        sysctl.enable_forwarding(version)


def _configure_pod(request: Request, conf: BridgeConf, result: Result, index: int | None) -> None:
    """Inside the pod: link up, addresses, routes (a route without gw uses the first gateway
    of its family, as the reference ConfigureIface does). ``index`` is the pod end's ifindex
    as the host end reports it (IFLA_LINK), which saves a lookup inside the pod."""
    gw_by_family: dict[int, IPAddress] = {}
    for ip in result.ips:
        if ip.gateway:
            gw_by_family.setdefault(ip.ip_version, ipaddress.ip_address(ip.gateway))
    with netns.enter(request.netns), rtnl() as pod:
        if conf.disable_container_interface:
            return
        if index is None:
            link = links.get_link(pod, request.ifname)
            if link is None:
                raise CNIError(Code.INTERNAL, "container interface vanished",
                               f"{request.ifname} not found in {request.netns} right after creation")
            index = link.index
        reqs = [nl.newlink(nl.LinkSpec(index=index, up=True), create=False)]
        what = [f"set {request.ifname} up"]
        for ip in result.ips:
            reqs.append(addresses.add_address_request(index, ipaddress.ip_interface(ip.address),
                                                      nodad=not conf.enable_dad))
            what.append(f"add address {ip.address}")
        described: list[tuple[str, IPAddress | None]] = []
        for r in result.routes:
            gw = ipaddress.ip_address(r.gw) if r.gw else gw_by_family.get(r.ip_version)
            spec = routes.RouteSpec(dst=ipaddress.ip_network(r.dst, strict=False), gw=gw, priority=r.priority,
                                    table=r.table, scope=r.scope, mtu=r.mtu, advmss=r.advmss)
            reqs.append(routes.add_route_request(index, spec))
            what.append(f"add route {r.dst}")
            described.append((r.dst, gw))
        # One round trip: the kernel applies them in order (up, addresses, then routes via them).
        results = pod.batch(reqs, what)
    first_route = len(reqs) - len(described)
    for i, res in enumerate(results):
        if not isinstance(res, NetlinkError) or (i > 0 and is_errno(res, EEXIST)):
            continue
        if i < first_route:
            raise res
        dst, gw = described[i - first_route]
        raise CNIError(Code.INTERNAL, "failed to add route",
                       f"route {dst} via {gw} dev {request.ifname} in {request.netns}: {res}") from None
