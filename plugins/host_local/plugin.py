"""host-local plugin hooks (work in progress)."""

from metacni.plugin import PluginInfo, hookimpl


@hookimpl
def cni_plugin_info() -> PluginInfo:
    return PluginInfo(capabilities=frozenset({"ips", "ipRanges"}), description="host-local IPAM")
