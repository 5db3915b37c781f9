"""``portmap``: expose pod ports on the node (hostPort), as the reference plugin does.

Runs in-process in the node's network namespace. The rules live in
:mod:`metacni.firewall`; this module only maps CNI verbs onto it:

* ADD needs ``prevResult`` (chained plugin); no mappings means nothing to do. After the
  rules are in, IPv4 with ``snat`` turns on ``route_localnet`` on the interface that
  routes to the pod (so 127.0.0.1:hostPort can be DNATed), and stale UDP conntrack
  entries of the mapped ports are flushed.
* DEL removes every rule of the attachment found by its identity alone -- it needs neither
  ``portMappings`` nor ``prevResult`` nor the namespace (the reference leaks there).
* CHECK verifies the rules of the families the pod actually has (IPv4-only pods pass).
* GC removes rules of this network whose attachment is not in the valid list.
"""

from __future__ import annotations

import ipaddress
import socket
import struct
from contextlib import closing
from logging import getLogger

from metacni.firewall import backend as fw
from metacni.firewall import conntrack
from metacni.firewall import portmap as fw_portmap
from metacni.firewall.identity import Attachment
from metacni.firewall.plan import PORTMAP
from metacni.plugin import (
    CNIError,
    Code,
    FirewallConfig,
    PluginConfig,
    PluginInfo,
    PortmapPlan,
    Request,
    Result,
    hookimpl,
    validate_config,
)

from .config import PortmapConfig

log = getLogger(__name__)


@hookimpl
def cni_config_model() -> type[PluginConfig]:
    return PortmapConfig


def _attachment(request: Request) -> Attachment:
    return Attachment(request.network_name, request.container_id, request.ifname)


def _parse(request: Request) -> tuple[PortmapPlan, str | None]:
    """The checked keys (:class:`.config.PortmapConfig`, code 7 with the JSON path), then the
    plan and the backend they ask for (None: detect)."""
    keys = validate_config(PortmapConfig, request.config, request.network_name, "portmap config")
    assert request.prev_result is not None
    plan = fw_portmap.plan(_attachment(request), request.runtime_config, request.prev_result, snat=keys.snat,
                           masq_all=keys.masq_all, mark_bit=keys.mark_bit,
                           external_mark_chain=keys.external_mark_chain,
                           conditions_v4=tuple(keys.conditions_v4), conditions_v6=tuple(keys.conditions_v6))
    return plan, keys.firewall


@hookimpl
def cni_plugin_info() -> PluginInfo:
    return PluginInfo(capabilities=frozenset({"portMappings"}), description="hostPort DNAT (portmap)")


@hookimpl
def cni_add(request: Request) -> Result | None:
    if request.prev_result is None:
        raise CNIError(Code.INVALID_CONFIG, "must be called as chained plugin", "portmap needs prevResult")
    plan, backend = _parse(request)
    if plan.empty:
        fw.delete(plan.attachment, PORTMAP, backend)  # a re-ADD without mappings leaves nothing
        return None
    fw.add(plan, backend)
    if plan.snat and plan.ipv4 is not None:
        _enable_route_localnet(plan.ipv4.ip)
    for m in plan.mappings:
        if m.protocol == "udp":
            for ip in plan.container_ips():
                if m.applies_to(ip.version):
                    conntrack.delete_udp_port(m.host_port, ip.version)
    return None


@hookimpl
def cni_del(request: Request) -> None:
    keys = validate_config(FirewallConfig, request.config, request.network_name, "portmap config")
    fw.delete(_attachment(request), PORTMAP, keys.firewall)


@hookimpl
def cni_check(request: Request) -> None:
    if request.prev_result is None:
        raise CNIError(
            Code.INVALID_CONFIG, "must be called as chained plugin", "portmap CHECK needs prevResult"
        )
    plan, backend = _parse(request)
    if not plan.empty:
        fw.check(plan, backend)


@hookimpl
def cni_gc(request: Request) -> None:
    fw.gc(request.network_name, request.valid_attachments, PORTMAP)


def _enable_route_localnet(pod_ip: ipaddress.IPv4Address) -> None:
    """Let 127.0.0.1 be routed out of the interface towards the pod (localhost hostPorts)."""
    ifname = _route_device(str(pod_ip))
    if not ifname:
        log.warning("no route to %s; localhost hostPorts will not work", pod_ip)
        return
    path = f"/proc/sys/net/ipv4/conf/{ifname}/route_localnet"
    try:
        with open(path, "w") as fh:
            fh.write("1")
    except OSError as exc:
        log.warning("cannot set %s: %s", path, exc)


_RTM_NEWROUTE, _RTM_GETROUTE, _NLM_F_REQUEST = 24, 26, 1
_RTA_DST, _RTA_OIF = 1, 4


def _route_device(dst: str) -> str | None:
    """The output interface of the route to ``dst`` (``ip route get``), or None.

    One RTM_GETROUTE over a stdlib netlink socket (pyroute2 would be a heavy import for it).
    The socket (and ``if_indextoname``'s) binds to this thread's netns.
    """
    addr = ipaddress.ip_address(dst)
    raw = addr.packed  # 4 or 16 bytes: the attribute needs no padding
    rtmsg = struct.pack("=BBBBBBBBI", socket.AF_INET if addr.version == 4 else socket.AF_INET6,
                        len(raw) * 8, 0, 0, 0, 0, 0, 0, 0)
    body = rtmsg + struct.pack("=HH", 4 + len(raw), _RTA_DST) + raw
    msg = struct.pack("=IHHII", 16 + len(body), _RTM_GETROUTE, _NLM_F_REQUEST, 1, 0) + body
    netlink = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, socket.NETLINK_ROUTE)
    with closing(netlink) as sock:  # socket.socket is no context manager
        sock.sendto(msg, (0, 0))
        data = sock.recv(65536)
    if len(data) < 16:
        return None
    length, kind = struct.unpack_from("=IH", data)
    if kind != _RTM_NEWROUTE:  # NLMSG_ERROR: no route
        return None
    pos = 16 + len(rtmsg)
    while pos + 4 <= min(length, len(data)):
        alen, atype = struct.unpack_from("=HH", data, pos)
        if alen < 4:
            break
        if atype == _RTA_OIF and alen >= 8:
            try:
                return socket.if_indextoname(struct.unpack_from("=I", data, pos + 4)[0])
            except OSError:
                return None
        pos += (alen + 3) & ~3
    return None
