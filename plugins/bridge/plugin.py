"""bridge plugin hooks (work in progress)."""

from metacni.plugin import PluginInfo, hookimpl


@hookimpl
def cni_plugin_info() -> PluginInfo:
    return PluginInfo(description="Linux bridge with a veth pair per pod")
