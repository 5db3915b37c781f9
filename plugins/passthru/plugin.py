"""``passthru``: Multus' ``cmd/passthru-cni``, the head plugin of an auxiliary CNI chain.

ADD returns an empty result (no interfaces, IPs, routes or DNS) of the config's version, so the
chained plugins after it get a ``prevResult``; DEL and CHECK do nothing. Multus ships it as a
binary in its image; metacni runs it in-process (metacni/meta/auxchain.py,
docs/design/1803-multus-migration-and-cni-1.1-loading.md).
"""

from __future__ import annotations

from metacni.plugin import PluginInfo, Request, Result, hookimpl


@hookimpl
def cni_plugin_info() -> PluginInfo:
    return PluginInfo(description="empty result: the head of an auxiliary chain (Multus passthru-cni)")


@hookimpl
def cni_add(request: Request) -> Result | None:
    return request.result(interfaces=[], ips=[], routes=[])


@hookimpl
def cni_del(request: Request) -> None:
    return None


@hookimpl
def cni_check(request: Request) -> None:
    return None
