"""bridge hooks: the classic pod network (a Linux bridge, one veth pair per pod)."""

from __future__ import annotations

from metacni.plugin import GC, STATUS, PluginInfo, Request, Result, hookimpl

from . import attach, check, config, detach


@hookimpl
def cni_plugin_info() -> PluginInfo:
    # ips/ipRanges are declared so runtimeConfig reaches the delegated IPAM intact.
    return PluginInfo(capabilities=frozenset({"mac", "ips", "ipRanges"}),
                      description="Linux bridge with a veth pair per pod")


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
    """The bridge holds no per-attachment state of its own (veths die with their netns);
    GC is passed on to IPAM, as the spec requires of delegating plugins."""
    if config.load(request).has_ipam:
        request.ipam(GC)


@hookimpl
def cni_status(request: Request) -> None:
    if config.load(request).has_ipam:
        request.ipam(STATUS)
