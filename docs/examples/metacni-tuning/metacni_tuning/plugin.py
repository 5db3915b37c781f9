"""``tuning-py`` hooks: set MTU, MAC and sysctls of the pod interface; put them back on DEL.

Chained after an interface plugin (bridge, ptp, ...). ADD records the original values in
``dataDir`` before changing anything, so DEL -- or the chain's rollback -- can restore them
from the attachment identity alone, and GC can drop records of attachments that are gone.
"""

from __future__ import annotations

import logging

from metacni.plugin import (
    CNIError,
    Code,
    PluginInfo,
    Request,
    Result,
    find_interface,
    hookimpl,
    in_pod_netns,
    netns_exists,
    result_from_prev,
)

from . import config, state
from .netlink import apply, current, restore

log = logging.getLogger(__name__)


@hookimpl
def cni_plugin_info() -> PluginInfo:
    # "mac" is the capability the reference tuning plugin consumes from runtimeConfig.
    return PluginInfo(capabilities=frozenset({"mac"}),
                      description="pod interface MTU, MAC and net.* sysctls (example plugin)")


@hookimpl
def cni_config_model() -> type[config.TuningConfig]:
    # What `metacni validate` checks in each plugin object of type tuning-py.
    return config.TuningConfig


@hookimpl
def cni_add(request: Request) -> Result:
    if request.prev_result is None:
        raise CNIError(Code.INVALID_CONFIG, "tuning-py must be chained",
                       f"network {request.network_name!r}: put an interface plugin before tuning-py")
    wanted = config.load(request)  # every field is checked before the pod is touched
    store = state.Store(wanted.data_dir, request.network_name)
    with in_pod_netns(request) as ipr:
        original = current(ipr, request.ifname, wanted)
        store.save(request.container_id, request.ifname, original)
        try:
            link = apply(ipr, request.ifname, wanted)
        except BaseException:
            restore(ipr, request.ifname, original)
            store.remove(request.container_id, request.ifname)
            raise
    result = result_from_prev(request)
    index = find_interface(result, request.ifname, request.netns)
    if index is not None:
        result.interfaces[index].mac = link.mac
        result.interfaces[index].mtu = link.mtu  # dropped again by conversion below 1.0.0
    return result


@hookimpl
def cni_del(request: Request) -> None:
    store = state.Store(config.data_dir(request), request.network_name)
    original = store.load(request.container_id, request.ifname)
    if original is None:
        return  # never added, or already deleted
    if request.netns and netns_exists(request.netns):
        with in_pod_netns(request) as ipr:
            restore(ipr, request.ifname, original)
    store.remove(request.container_id, request.ifname)


@hookimpl
def cni_check(request: Request) -> None:
    wanted = config.load(request)
    with in_pod_netns(request) as ipr:
        have = current(ipr, request.ifname, wanted)
    problems = []
    if wanted.mtu is not None and have.mtu != wanted.mtu:
        problems.append(f"mtu is {have.mtu}, expected {wanted.mtu}")
    if wanted.mac is not None and have.mac != wanted.mac:
        problems.append(f"mac is {have.mac}, expected {wanted.mac}")
    for item in wanted.sysctls:
        if have.sysctls.get(item.parts) != item.value:
            problems.append(f"sysctl {item.key} is {have.sysctls.get(item.parts)!r}, expected {item.value!r}")
    if problems:
        raise CNIError(Code.UNKNOWN, "pod interface not as configured",
                       f"{request.ifname} in {request.netns}: " + "; ".join(problems))


@hookimpl
def cni_gc(request: Request) -> None:
    removed = state.Store(config.data_dir(request), request.network_name).gc(set(request.valid_attachments))
    if removed:
        log.info("tuning-py GC on %s dropped %d stale records", request.network_name, removed)
