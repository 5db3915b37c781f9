"""The meta plugin's verbs: resolve the pod's networks, run each chain, undo on failure.

ADD: delegates are recorded (``delegate_cache``) before the first runs; a failure deletes
every attachment already made, in reverse, and the error names pod, network and reason.
DEL: works from the record alone (no API); a missing or corrupt record is logged as an
error and DEL still removes the primary and every attachment the libcni result cache
identifies for the container.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from metacni.engine.cache import ResultCache
from metacni.engine.chain import ChainRunner, RuntimeConf
from metacni.engine.request import Request
from metacni.spec.args import CniArgs
from metacni.spec.config import network_list_from_bytes
from metacni.spec.errors import CNIError, Code
from metacni.spec.results import Result

from . import defaultroute, delegate_cache, status
from .annotations import (
    DEFAULT_NETWORK,
    NETWORKS,
    SKIP_DEFAULT_NETWORKS,
    parse_default_network,
    parse_networks,
)
from .config import MetaConfig
from .kube import KubeView, view_for
from .networks import Delegate, build_delegates, resolve_primary

log = logging.getLogger(__name__)
POD_ANNOTATIONS_CAP = "io.kubernetes.cri.pod-annotations"


@dataclass
class PodRef:
    namespace: str
    name: str
    uid: str

    @property
    def known(self) -> bool:
        return bool(self.namespace and self.name)

    def describe(self, container_id: str) -> str:
        return f"pod {self.namespace}/{self.name}" if self.known else f"container {container_id}"


def pod_ref(args: CniArgs) -> PodRef:
    return PodRef(args.get("K8S_POD_NAMESPACE", ""), args.get("K8S_POD_NAME", ""), args.get("K8S_POD_UID", ""))


def delegate_args(args: CniArgs) -> CniArgs:
    """The runtime's CNI_ARGS with IgnoreUnknown first, so Go delegates accept K8S_* keys."""
    if not args.pairs or "IgnoreUnknown" in args:
        return args
    return CniArgs([("IgnoreUnknown", "1"), *args.pairs])


class Context:
    """One meta call: config, runner, pod identity, and the view (built only when needed)."""

    def __init__(self, request: Request) -> None:
        self.request = request
        self.cfg = MetaConfig.from_dict(request.config)
        configure_logging(self.cfg)
        if request.invoker is None:
            from metacni.engine.invoke import Invoker
            from metacni.engine.registry import Registry

            invoker = Invoker(Registry())
        else:
            invoker = request.invoker
        self.runner = ChainRunner(invoker, self.cfg.cni_path(request.cni_path), ResultCache(self.cfg.cni_dir))
        self.pod = pod_ref(request.args)
        self.args = delegate_args(request.args)
        self._view: KubeView | None = None
        self._view_made = False

    @property
    def view(self) -> KubeView | None:
        if not self._view_made:
            self._view, self._view_made = view_for(self.request.config), True
        return self._view

    @property
    def who(self) -> str:
        return self.request.container_id and self.pod.describe(self.request.container_id) or "metacni"

    def rt(self, d: Delegate, netns: str | None = None) -> RuntimeConf:
        return RuntimeConf(container_id=self.request.container_id,
                           netns=self.request.netns if netns is None else netns,
                           ifname=d.ifname, args=self.args, capability_args=dict(d.capability_args))

    def fail(self, exc: CNIError, what: str) -> CNIError:
        return CNIError(exc.code, exc.msg, f"{self.who}: {what}: {exc.details}" if exc.details
                        else f"{self.who}: {what}")


# ------------------------------------------------------------------------------ ADD
def _annotations(ctx: Context) -> dict[str, str]:
    """From runtimeConfig when the runtime sent them (no API read), else from the pod."""
    sent = ctx.request.runtime_config.get(POD_ANNOTATIONS_CAP)
    if sent is not None:
        return {str(k): str(v) for k, v in dict(sent).items()}
    if not ctx.pod.known:
        return {}
    view = ctx.view
    if view is None:
        log.warning("%s: no Kubernetes API configured and no pod annotations in runtimeConfig; "
                    "attaching the primary network and defaultNetworks only", ctx.who)
        return {}
    pod = view.get_pod(ctx.pod.namespace, ctx.pod.name)
    if pod is None:
        raise CNIError(Code.TRY_AGAIN_LATER, "pod not found",
                       f"{ctx.who} does not exist in the Kubernetes API")
    meta = pod.get("metadata") or {}
    uid = str(meta.get("uid", ""))
    annotations = {str(k): str(v) for k, v in (meta.get("annotations") or {}).items()}
    static = annotations.get("kubernetes.io/config.source", "api") != "api"
    if ctx.pod.uid and uid and uid != ctx.pod.uid and not static:
        raise CNIError(Code.TRY_AGAIN_LATER, "pod UID mismatch",
                       f"{ctx.who}: CNI_ARGS K8S_POD_UID {ctx.pod.uid} but the API has {uid} (pod recreated)")
    return annotations


def _plan(ctx: Context) -> list[Delegate]:
    cfg, ns = ctx.cfg, ctx.pod.namespace or "default"
    annotations = _annotations(ctx)
    selections = parse_networks(annotations.get(NETWORKS), ns)
    override = parse_default_network(annotations.get(DEFAULT_NETWORK), cfg.multus_namespace)
    skip_defaults = (ns in cfg.system_namespaces
                     or annotations.get(SKIP_DEFAULT_NETWORKS, "").lower() == "true")
    runtime_caps = ctx.request.runtime_config.to_plain()
    return build_delegates(cfg, ctx.view if _needs_view(cfg, selections, override) else None,
                           pod_namespace=ns, runtime_ifname=ctx.request.ifname, runtime_caps=runtime_caps,
                           selections=selections, override=override, with_default_networks=not skip_defaults)


def _needs_view(cfg: MetaConfig, selections: list[Any], override: Any) -> bool:
    """Only NAD lookups need the API; a config naming local files never touches it."""
    names = [cfg.cluster_network, *cfg.default_networks]
    return bool(selections or override or any("/" not in n and n != "auto" for n in names if n))


def wait_ready(cfg: MetaConfig, who: str) -> None:
    """readinessindicatorfile: wait for the primary network to declare itself ready."""
    path = cfg.readiness_indicator_file
    if not path:
        return
    deadline = time.monotonic() + cfg.readiness_timeout
    while not os.path.exists(path):
        if time.monotonic() >= deadline:
            raise CNIError(Code.TRY_AGAIN_LATER, "primary network not ready",
                           f"{who}: readiness indicator file {path} did not appear within "
                           f"{cfg.readiness_timeout:g}s; is the default network ready?")
        time.sleep(0.2)


def _existing_ifnames(netns_path: str, names: list[str]) -> list[str]:
    from metacni.kernel import netns
    from metacni.kernel.rtnl import rtnl

    with netns.enter(netns_path), rtnl() as ipr:
        return [n for n in names if ipr.link_lookup(ifname=n)]


def add(request: Request) -> Result:
    ctx = Context(request)
    wait_ready(ctx.cfg, ctx.who)
    try:
        delegates = _plan(ctx)
    except CNIError as exc:
        raise ctx.fail(exc, "cannot resolve networks") from None
    _undo_previous_attempt(ctx)
    clash = _existing_ifnames(request.netns, [d.ifname for d in delegates])
    if clash:
        raise CNIError(Code.INVALID_CONFIG, "interface already exists",
                       f"{ctx.who}: {', '.join(clash)} already exist in {request.netns} and were not created "
                       "by metacni")
    record = delegate_cache.CachedAttachments(request.container_id, request.netns, ctx.pod.namespace,
                                              ctx.pod.name, delegates)
    delegate_cache.write(ctx.cfg.cni_dir, record)
    attached: list[tuple[Delegate, Result]] = []
    try:
        for d in delegates:
            try:
                attached.append((d, ctx.runner.add(d.net, ctx.rt(d))))
            except CNIError as exc:
                raise ctx.fail(exc, f"network {d.label} ({d.ifname}) failed: {exc.msg}") from None
        try:
            edited = defaultroute.apply(request.netns, attached)
        except CNIError as exc:
            raise ctx.fail(exc, "default-route") from None
        for (d, before), (_, after) in zip(attached, edited, strict=True):
            if after is not before:
                _rewrite_cached_result(ctx, d, after)
        attached = edited
        if ctx.pod.known and ctx.view is not None:
            entries = status.network_status(attached, request.container_id, ctx.cfg.device_info_dir)
            try:
                ctx.view.patch_pod_network_status(ctx.pod.namespace, ctx.pod.name, entries)
            except CNIError as exc:
                raise ctx.fail(exc, "writing network-status") from None
    except BaseException:
        _rollback(ctx, [d for d, _ in attached])
        delegate_cache.remove(ctx.cfg.cni_dir, request.container_id)
        raise
    return attached[0][1]


def _rewrite_cached_result(ctx: Context, d: Delegate, result: Result) -> None:
    entry = ctx.runner.cache.read(d.net.name, ctx.request.container_id, d.ifname)
    if entry is not None:
        entry.result = result.to_wire()
        ctx.runner.cache.write(entry)


def _rollback(ctx: Context, done: list[Delegate]) -> None:
    for d in reversed(done):
        try:
            ctx.runner.delete(d.net, ctx.rt(d))
        except CNIError as exc:
            log.error("%s: rollback of network %s (%s) failed: %s", ctx.who, d.label, d.ifname, exc)


def _undo_previous_attempt(ctx: Context) -> None:
    """A retried ADD of our own making (Multus #1312): remove what the earlier attempt left."""
    try:
        record = delegate_cache.read(ctx.cfg.cni_dir, ctx.request.container_id)
    except delegate_cache.CorruptCache as exc:
        log.error("%s: %s; cleaning up from the result cache", ctx.who, exc)
        record = None
        delegate_cache.quarantine(exc.path)
        _delete_all(ctx, _fallback_delegates(ctx), strict=False)
        return
    if record is None:
        return
    log.warning("%s: ADD for a container metacni already attached; removing the earlier attachments first",
                ctx.who)
    _delete_all(ctx, record.delegates, strict=False, netns=record.netns or None)
    delegate_cache.remove(ctx.cfg.cni_dir, ctx.request.container_id)


# ------------------------------------------------------------------------------ DEL
def _fallback_delegates(ctx: Context) -> list[Delegate]:
    """What DEL can identify without a record: every libcni result-cache entry of this
    container (it holds the config used at ADD), plus the primary from the current config."""
    cid = ctx.request.container_id
    found: list[Delegate] = []
    for entry in ctx.runner.cache.entries():
        if entry.container_id != cid:
            continue
        try:
            net = network_list_from_bytes(entry.config, f"cached config of {entry.network_name}")
        except CNIError as exc:
            log.error("%s: cached config of %s/%s unusable: %s", ctx.who, entry.network_name, entry.ifname, exc)
            continue
        found.append(Delegate(label=entry.network_name, net=net, ifname=entry.ifname,
                              primary=entry.ifname == ctx.request.ifname,
                              capability_args=dict(entry.capability_args)))
    found.sort(key=lambda d: (not d.primary, _natural(d.ifname)))
    if not any(d.primary for d in found):
        try:
            label, net = resolve_primary(ctx.cfg, None)
        except CNIError:
            try:
                label, net = resolve_primary(ctx.cfg, ctx.view)
            except CNIError as exc:
                log.error("%s: cannot identify the primary network for DEL: %s", ctx.who, exc)
                return found
        found.insert(0, Delegate(label=label, net=net, ifname=ctx.request.ifname, primary=True,
                                 capability_args=ctx.request.runtime_config.to_plain()))
    return found


def _natural(ifname: str) -> tuple[str, int]:
    stem = ifname.rstrip("0123456789")
    digits = ifname[len(stem):]
    return stem, int(digits) if digits else -1


def _delete_all(ctx: Context, delegates: list[Delegate], *, strict: bool, netns: str | None = None) -> None:
    """DEL every delegate in reverse order; all are attempted (spec 7.2)."""
    errors: list[CNIError] = []
    for d in reversed(delegates):
        try:
            ctx.runner.delete(d.net, ctx.rt(d, netns))
        except CNIError as exc:
            log.error("%s: DEL of network %s (%s) failed: %s", ctx.who, d.label, d.ifname, exc)
            errors.append(CNIError(exc.code, exc.msg, f"network {d.label} ({d.ifname}): {exc.details}"))
    if errors and strict:
        raise CNIError(errors[0].code, "failed to delete networks",
                       f"{ctx.who}: " + "; ".join(f"{e.msg}: {e.details}" for e in errors))


def delete(request: Request) -> None:
    ctx = Context(request)
    cid = request.container_id
    corrupt: delegate_cache.CorruptCache | None = None
    try:
        record = delegate_cache.read(ctx.cfg.cni_dir, cid)
    except delegate_cache.CorruptCache as exc:
        corrupt, record = exc, None
    if record is not None:
        delegates = record.delegates
    else:
        delegates = _fallback_delegates(ctx)
        reason = str(corrupt) if corrupt else f"no delegate cache {Path(ctx.cfg.cni_dir) / cid}"
        log.error("%s: DEL without a usable delegate record (%s); removing what can be identified: %s",
                  ctx.who, reason, ", ".join(f"{d.label} ({d.ifname})" for d in delegates) or "nothing")
        if not delegates:
            raise CNIError(Code.IO_FAILURE, "cannot identify networks to delete",
                           f"{ctx.who}: {reason}, and neither the primary network nor any cached result "
                           "could be found")
    _delete_all(ctx, delegates, strict=True)
    if corrupt is not None:
        delegate_cache.quarantine(corrupt.path)
    delegate_cache.remove(ctx.cfg.cni_dir, cid)


# ------------------------------------------------------------------------------ CHECK / GC / STATUS
def check(request: Request) -> None:
    ctx = Context(request)
    record = delegate_cache.read(ctx.cfg.cni_dir, request.container_id)
    if record is None:
        raise CNIError(Code.UNKNOWN_CONTAINER, "no attachments recorded",
                       f"{ctx.who}: metacni has no delegate record for this container")
    for d in record.delegates:
        try:
            ctx.runner.check(d.net, ctx.rt(d))
        except CNIError as exc:
            raise ctx.fail(exc, f"network {d.label} ({d.ifname}) CHECK failed: {exc.msg}") from None


def gc(request: Request) -> None:
    """DEL every recorded container not in the valid set, then GC the primary network."""
    ctx = Context(request)
    valid = request.valid_attachments
    keep = {cid for cid, _ in valid}
    errors: list[str] = []
    for cid in delegate_cache.container_ids(ctx.cfg.cni_dir):
        if cid in keep:
            continue
        sub = Context(_with_container(request, cid))
        try:
            record = delegate_cache.read(ctx.cfg.cni_dir, cid)
            delegates = record.delegates if record else []
            _delete_all(sub, delegates, strict=True, netns=record.netns if record else "")
            delegate_cache.remove(ctx.cfg.cni_dir, cid)
        except CNIError as exc:
            errors.append(f"container {cid}: {exc}")
    try:
        _, primary = resolve_primary(ctx.cfg, ctx.view)
        ctx.runner.gc(primary, valid)
    except CNIError as exc:
        errors.append(str(exc))
    if errors:
        raise CNIError(Code.UNKNOWN, "garbage collection had errors", "; ".join(errors))


def _with_container(request: Request, cid: str) -> Request:
    from dataclasses import replace

    inv = replace(request.invocation, command="DEL", container_id=cid, netns="", ifname="eth0")
    return Request(invocation=inv, config=request.config, invoker=request.invoker)


def status_check(request: Request) -> None:
    ctx = Context(request)
    path = ctx.cfg.readiness_indicator_file
    if path and not os.path.exists(path):
        raise CNIError(Code.NOT_AVAILABLE, "primary network not ready", f"readiness indicator file {path} is absent")
    _, primary = resolve_primary(ctx.cfg, ctx.view)
    ctx.runner.status(primary)


# ------------------------------------------------------------------------------ logging
_LEVELS = {"debug": logging.DEBUG, "verbose": logging.INFO, "error": logging.ERROR, "panic": logging.CRITICAL}
_configured: set[str] = set()


def configure_logging(cfg: MetaConfig) -> None:
    """logFile/logLevel (Multus names and levels); once per process and file."""
    if cfg.log_level and cfg.log_level.lower() in _LEVELS:
        logging.getLogger("metacni").setLevel(_LEVELS[cfg.log_level.lower()])
    if cfg.log_file and cfg.log_file not in _configured:
        _configured.add(cfg.log_file)
        try:
            handler = logging.FileHandler(cfg.log_file)
        except OSError as exc:
            log.error("cannot open logFile %s: %s", cfg.log_file, exc)
            return
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        logging.getLogger("metacni").addHandler(handler)
