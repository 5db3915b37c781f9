"""``forward``: accept forwarded traffic to and from the pod's addresses.

Needed on nodes whose FORWARD policy is DROP (Docker sets it, many hardening guides too).
iptables: rules in ``CNI-FORWARD``, jumped to from the top of ``filter FORWARD``.
nftables: our ``inet metacni_forward`` table, plus the same accepts at the top of any
foreign forward base chain that drops -- a drop in any nftables base chain is final. The
list of such chains is re-read at most every 10 s per netns (``FOREIGN_TTL``): listing
every chain before each ADD would cost time that grows with the pods.
"""

from __future__ import annotations

from metacni.firewall import backend as fw
from metacni.firewall.identity import Attachment
from metacni.firewall.plan import FORWARD, ForwardPlan, attachment_ips
from metacni.plugin import CNIError, Code, PluginConfig, PluginInfo, Request, Result, hookimpl, validate_config

from .config import ForwardConfig


@hookimpl
def cni_plugin_info() -> PluginInfo:
    return PluginInfo(description="accept forwarded pod traffic")


@hookimpl
def cni_config_model() -> type[PluginConfig]:
    return ForwardConfig


def _plan(request: Request) -> tuple[ForwardPlan, str | None]:
    if request.prev_result is None:
        raise CNIError(Code.INVALID_CONFIG, "must be called as chained plugin", "forward needs prevResult")
    validate_config(ForwardConfig, request.config, request.network_name, "forward config")
    backend = fw.validate_name(request.config.get("backend"))
    ips = attachment_ips(request.prev_result, request.ifname).ips
    return ForwardPlan(Attachment(request.network_name, request.container_id, request.ifname), ips), backend


@hookimpl
def cni_add(request: Request) -> Result | None:
    plan, backend = _plan(request)
    fw.apply(plan, backend)
    return None


@hookimpl
def cni_del(request: Request) -> None:
    attachment = Attachment(request.network_name, request.container_id, request.ifname)
    fw.delete(attachment, FORWARD, fw.validate_name(request.config.get("backend")))


@hookimpl
def cni_check(request: Request) -> None:
    plan, backend = _plan(request)
    if plan.addresses:
        fw.check(plan, backend)


@hookimpl
def cni_gc(request: Request) -> None:
    fw.gc(request.network_name, request.valid_attachments, FORWARD)
