"""host-local hooks: ADD allocates, DEL releases by (container id, ifname), CHECK verifies a
lease exists, GC releases everything not in ``cni.dev/valid-attachments``."""

from __future__ import annotations

import os
from logging import getLogger
from pathlib import Path

from metacni.plugin import DNS, CNIError, Code, IPConfig, PluginConfig, PluginInfo, Request, Result, hookimpl

from . import config
from .allocator import allocate
from .resolv import parse_resolv_conf, read_resolv_conf
from .store import Store

log = getLogger(__name__)


@hookimpl
def cni_plugin_info() -> PluginInfo:
    return PluginInfo(capabilities=frozenset({"ips", "ipRanges"}),
                      description="host-local IPAM, data directory shared with the reference binary")


@hookimpl
def cni_config_model() -> type[PluginConfig]:
    from .model import HostLocalConfig
    return HostLocalConfig


def _store(cfg: config.IPAMConfig) -> Store:
    return Store(cfg.data_dir, cfg.network)


@hookimpl
def cni_add(request: Request) -> Result:
    cfg = config.load(request)
    dns = _dns(cfg)
    store = _store(cfg)
    try:
        with store.locked():
            allocs = allocate(cfg, store, request.container_id, request.ifname)
    except OSError as exc:
        raise CNIError(Code.IO_FAILURE, "host-local store failed",
                       f"network {cfg.network!r}, data dir {store.dir!r}: {exc}") from exc
    ips = [IPConfig(address=a.cidr, gateway=str(a.range.gateway)) for a in allocs]
    log.debug("host-local %s: %s/%s got %s", cfg.network, request.container_id, request.ifname,
              [a.cidr for a in allocs])
    return request.result(ips=ips, routes=list(cfg.routes), dns=dns)


def _dns(cfg: config.IPAMConfig) -> DNS:
    if not cfg.resolv_conf:
        return DNS()
    try:
        return parse_resolv_conf(read_resolv_conf(cfg.resolv_conf))
    except OSError as exc:
        raise config.invalid(cfg.network, f"ipam.resolvConf {cfg.resolv_conf!r}: {exc.strerror}") from None


@hookimpl
def cni_del(request: Request) -> None:
    cfg = config.load_location(request)
    store = _store(cfg)
    with store.locked(create=False) as present:
        if not present:
            return
        for lease in store.find(request.container_id, request.ifname):
            store.release(lease.ip)


@hookimpl
def cni_check(request: Request) -> None:
    cfg = config.load_location(request)
    if not _store(cfg).find(request.container_id, request.ifname):
        raise CNIError(Code.INTERNAL, "host-local: failed to find address",
                       f"no lease for container {request.container_id} ifname {request.ifname} "
                       f"on network {cfg.network!r}")


@hookimpl
def cni_gc(request: Request) -> None:
    cfg = config.load_location(request)
    valid = set(request.valid_attachments)
    valid_ids = {cid for cid, _ in valid}
    store = _store(cfg)
    with store.locked(create=False) as present:
        if not present:
            return
        for lease in list(store.leases()):
            keep = lease.container_id in valid_ids if lease.ifname is None else \
                (lease.container_id, lease.ifname) in valid
            if not keep:
                log.info("host-local GC %s: releasing %s of %s/%s", cfg.network, lease.ip,
                         lease.container_id, lease.ifname)
                store.release(lease.ip)


@hookimpl
def cni_status(request: Request) -> None:
    cfg = config.load_location(request)
    probe = Path(cfg.data_dir)  # the nearest existing ancestor is where the directory would be made
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not os.access(probe, os.W_OK):
        raise CNIError(Code.NOT_AVAILABLE, "host-local data directory not writable",
                       f"network {cfg.network!r}: {cfg.data_dir!r}")
