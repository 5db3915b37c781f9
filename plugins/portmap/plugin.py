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
import logging

from metacni.firewall import backend as fw
from metacni.firewall import conntrack
from metacni.firewall import portmap as config
from metacni.firewall.identity import Attachment
from metacni.firewall.plan import PORTMAP
from metacni.plugin import CNIError, Code, PluginInfo, Request, Result, hookimpl

log = logging.getLogger(__name__)


def _attachment(request: Request) -> Attachment:
    return Attachment(request.network_name, request.container_id, request.ifname)


@hookimpl
def cni_plugin_info() -> PluginInfo:
    return PluginInfo(capabilities=frozenset({"portMappings"}), description="hostPort DNAT (portmap)")


@hookimpl
def cni_add(request: Request) -> Result | None:
    if request.prev_result is None:
        raise CNIError(Code.INVALID_CONFIG, "must be called as chained plugin", "portmap needs prevResult")
    plan, backend = config.parse(
        request.config, request.runtime_config, request.prev_result, _attachment(request)
    )
    if not plan.mappings or not plan.container_ips():
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
    fw.delete(_attachment(request), PORTMAP, fw.validate_name(request.config.get("backend")))


@hookimpl
def cni_check(request: Request) -> None:
    if request.prev_result is None:
        raise CNIError(
            Code.INVALID_CONFIG, "must be called as chained plugin", "portmap CHECK needs prevResult"
        )
    plan, backend = config.parse(
        request.config, request.runtime_config, request.prev_result, _attachment(request)
    )
    if plan.mappings and plan.container_ips():
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


def _route_device(dst: str) -> str | None:
    from pyroute2 import IPRoute  # created here: the socket binds to this thread's netns

    with IPRoute() as ipr:
        routes = ipr.route("get", dst=dst)
        for route in routes:
            oif = route.get("RTA_OIF") or route.get_attr("RTA_OIF")
            if oif:
                links = ipr.get_links(oif)
                if links:
                    return str(links[0].get_attr("IFLA_IFNAME"))
    return None
