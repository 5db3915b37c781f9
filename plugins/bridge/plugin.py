"""bridge hooks: the classic pod network (a Linux bridge, one veth pair per pod).

Netlink goes through metacni.kernel's stdlib rtnetlink (a few round trips per ADD, see
attach.py). DEL in the daemon detaches synchronously and destroys asynchronously: the host
veth is set down, released from the bridge and marked in one request before DEL answers, and
the daemon's link reaper deletes the pair (the kernel's wait) in the background;
without a reaper DEL deletes synchronously. See detach.py; GC sweeps marked leftovers.
"""

from __future__ import annotations

from metacni.firewall.spoofcheck import gc_spoofcheck
from metacni.kernel import reaper
from metacni.netlink.rtnl import rtnl
from metacni.plugin import GC, STATUS, PluginConfig, PluginInfo, Request, Result, hookimpl

from . import attach, check, config, detach


@hookimpl
def cni_plugin_info() -> PluginInfo:
    # ips/ipRanges are declared so runtimeConfig reaches the delegated IPAM intact.
    return PluginInfo(capabilities=frozenset({"mac", "ips", "ipRanges"}),
                      description="Linux bridge with a veth pair per pod")


@hookimpl
def cni_config_model() -> type[PluginConfig]:
    from .model import BridgeConfig
    return BridgeConfig


@hookimpl
def cni_add(request: Request) -> Result:
    return attach.add(request, config.load(request))


@hookimpl
def cni_del(request: Request) -> None:
    detach.delete(request, config.load(request))


@hookimpl
def cni_check(request: Request) -> None:
    check.check(request, config.load(request))


@hookimpl
def cni_gc(request: Request) -> None:
    """Veths die with their netns; what can outlive an attachment is its spoof-check chain,
    swept here (whatever ``macspoofchk`` says now: it may have been on when the attachment
    was added), and a host veth a crashed daemon detached but never deleted (marked for the
    reaper, see detach.py). GC is then passed on to IPAM, as the spec requires of delegating
    plugins."""
    conf = config.load(request)
    try:
        with rtnl() as ipr:
            reaper.sweep(ipr)
        gc_spoofcheck(conf.network, request.valid_attachments)
    finally:
        if conf.has_ipam:
            request.ipam(GC)


@hookimpl
def cni_status(request: Request) -> None:
    if config.load(request).has_ipam:
        request.ipam(STATUS)
