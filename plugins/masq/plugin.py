"""``masq``: masquerade pod traffic to anything outside its own subnets.

Config: ``nonMasqueradeCIDRs`` (e.g. cluster and service CIDRs) and ``backend``. The same
functions back bridge's ``ipMasq`` (:mod:`metacni.firewall.masq`). DEL needs only the
attachment identity, so it works after the namespace is gone.
"""

from __future__ import annotations

from metacni.firewall import backend as fw
from metacni.firewall.identity import Attachment
from metacni.firewall.plan import MASQ, MasqPlan, attachment_ips, parse_cidrs
from metacni.plugin import CNIError, Code, PluginConfig, PluginInfo, Request, Result, hookimpl, validate_config

from .config import MasqConfig


@hookimpl
def cni_plugin_info() -> PluginInfo:
    return PluginInfo(description="masquerade pod traffic leaving its subnets")


@hookimpl
def cni_config_model() -> type[PluginConfig]:
    return MasqConfig


def _plan(request: Request) -> tuple[MasqPlan, str | None]:
    if request.prev_result is None:
        raise CNIError(Code.INVALID_CONFIG, "must be called as chained plugin", "masq needs prevResult")
    validate_config(MasqConfig, request.config, request.network_name, "masq config")
    backend = fw.validate_name(request.config.get("backend"))
    cidrs = parse_cidrs(request.config.get("nonMasqueradeCIDRs"), "nonMasqueradeCIDRs")
    ips = attachment_ips(request.prev_result, request.ifname).ips
    att = Attachment(request.network_name, request.container_id, request.ifname)
    return MasqPlan(att, ips, cidrs), backend


@hookimpl
def cni_add(request: Request) -> Result | None:
    plan, backend = _plan(request)
    fw.apply(plan, backend)
    return None


@hookimpl
def cni_del(request: Request) -> None:
    attachment = Attachment(request.network_name, request.container_id, request.ifname)
    fw.delete(attachment, MASQ, fw.validate_name(request.config.get("backend")))


@hookimpl
def cni_check(request: Request) -> None:
    plan, backend = _plan(request)
    if plan.addresses:
        fw.check(plan, backend)


@hookimpl
def cni_gc(request: Request) -> None:
    fw.gc(request.network_name, request.valid_attachments, MASQ)
