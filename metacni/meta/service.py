"""The meta plugin's verbs: resolve the pod's networks, run each chain, undo on failure.

ADD: delegates are recorded (``delegate_cache``) before the first runs; a failure deletes
every attachment already made, in reverse, and the error names pod, network and reason.
DEL: works from the record alone (no API); a missing or corrupt record is logged as an
error and DEL still removes the primary and every attachment the libcni result cache
identifies for the container.
ADD (never DEL) first waits for the readiness indicator file. GC and STATUS live in
:mod:`metacni.meta.gc` and :mod:`metacni.meta.status_verb`; they use the helpers here.

Above 400 lines on purpose: ADD's rollback is DEL's teardown, both over one ``Context``;
splitting them would put one transaction's two halves in different modules.
"""

from __future__ import annotations

import logging
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from metacni.engine import skel
from metacni.engine.cache import CacheEntry, ResultCache
from metacni.engine.chain import ChainRunner, RuntimeConf
from metacni.engine.request import Request
from metacni.spec.args import CniArgs
from metacni.spec.config import NetworkList, network_list_from_bytes
from metacni.spec.errors import CNIError, Code
from metacni.spec.results import Result

from . import auxchain, defaultroute, delegate_cache, trust
from .annotations import (
    DEFAULT_NETWORK,
    NETWORKS,
    SKIP_DEFAULT_NETWORKS,
    parse_default_network,
    parse_networks,
)
from .config import MetaConfig
from .kube import view_for
from .networks import Delegate, build_delegates, nad_resource_name, resolve_primary

if TYPE_CHECKING:
    from typing import Any

    from .kube import KubeView

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
        self.api_uid = ""  # the pod's UID as the API has it, once the ADD read the pod

    @property
    def view(self) -> KubeView | None:
        if not self._view_made:
            self._view, self._view_made = view_for(self.request.config), True
        return self._view

    @property
    def who(self) -> str:
        return self.request.container_id and self.pod.describe(self.request.container_id) or "metacni"

    def rt(self, d: Delegate, netns: str | None = None) -> RuntimeConf:
        fallback = d.fallback_args()  # Multus' IP=/MAC= for undeclared ips/mac capabilities
        args = delegate_args(CniArgs([*self.args.pairs, *fallback])) if fallback else self.args
        return RuntimeConf(container_id=self.request.container_id,
                           netns=self.request.netns if netns is None else netns,
                           ifname=d.ifname, args=args, capability_args=dict(d.capability_args))

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
    uid = ctx.api_uid = str(meta.get("uid", ""))
    annotations = {str(k): str(v) for k, v in (meta.get("annotations") or {}).items()}
    static = annotations.get("kubernetes.io/config.source", "api") != "api"
    if ctx.pod.uid and uid and uid != ctx.pod.uid and not static:
        raise CNIError(Code.TRY_AGAIN_LATER, "pod UID mismatch",
                       f"{ctx.who}: CNI_ARGS K8S_POD_UID {ctx.pod.uid} but the API has {uid} (pod recreated)")
    return annotations


def _plan(ctx: Context, resources: dict[str, str] | None = None) -> list[Delegate]:
    cfg, ns = ctx.cfg, ctx.pod.namespace or "default"
    annotations = _annotations(ctx)
    selections = parse_networks(annotations.get(NETWORKS), ns)
    override = parse_default_network(annotations.get(DEFAULT_NETWORK), cfg.multus_namespace)
    skip_defaults = (ns in cfg.system_namespaces
                     or annotations.get(SKIP_DEFAULT_NETWORKS, "").lower() == "true")
    # Checked before any NAD is looked up: 1 for the primary, then defaultNetworks, then the pod's.
    check_attachment_cap(ctx, 1 + (0 if skip_defaults else len(cfg.default_networks)) + len(selections))
    runtime_caps = ctx.request.runtime_config.to_plain()
    delegates = build_delegates(cfg, ctx.view if _needs_view(cfg, selections, override) else None,
                                pod_namespace=ns, runtime_ifname=ctx.request.ifname, runtime_caps=runtime_caps,
                                selections=selections, override=override, with_default_networks=not skip_defaults,
                                resources=resources)
    return auxchain.append(cfg, delegates)  # Multus' auxiliaryCNIChainName, last


def check_attachment_cap(ctx: Context, count: int) -> None:
    cap = ctx.cfg.max_attachments
    if count > cap:
        raise CNIError(Code.INVALID_CONFIG, "too many network attachments",
                       f"{count} interfaces requested (primary, defaultNetworks and the {NETWORKS} "
                       f"annotation); this node allows {cap} per pod (maxAttachments)")


def _needs_view(cfg: MetaConfig, selections: list[Any], override: Any) -> bool:
    """Only NAD lookups need the API; a config naming local files never touches it."""
    names = [cfg.cluster_network, *cfg.default_networks]
    return bool(selections or override or any("/" not in n and n != "auto" for n in names if n))


READINESS_POLL = 0.2  # seconds between looks at the readiness indicator file


def indicator_present(path: Path) -> bool:
    """The one place the readiness indicator file is looked at (ADD's wait and STATUS)."""
    return path.exists()


def wait_ready(cfg: MetaConfig, who: str) -> None:
    """readinessindicatorfile: before ADD touches anything, wait until the primary network has
    declared itself ready (Multus pain points #402, #1527: back off rather than give a pod a
    half-working network). Polls up to ``readinessTimeout`` and fails with 11 (try again
    later) so the runtime retries the sandbox; nothing has been configured at that point."""
    path = cfg.readiness_indicator_file
    if path is None:
        return
    deadline = time.monotonic() + cfg.readiness_timeout
    while not indicator_present(path):
        left = deadline - time.monotonic()
        if left <= 0:
            raise CNIError(Code.TRY_AGAIN_LATER, "primary network not ready",
                           f"{who}: readiness indicator file {path} did not appear within "
                           f"{cfg.readiness_timeout:g}s; is the default network ready?")
        time.sleep(min(READINESS_POLL, left))


def existing_ifnames(netns_path: str, names: list[str]) -> list[str]:
    from metacni.kernel import links, netns, reaper
    from metacni.netlink.rtnl import rtnl

    def taken() -> list[str]:
        with netns.enter(netns_path), rtnl() as ipr:
            return [n for n in names if links.get_link(ipr, n) is not None]

    found = taken()
    # A clash may be this pod's own pair, DELeted just before and still being reaped.
    if found and reaper.current() is not None and reaper.wait_idle():
        found = taken()
    return found


def add(request: Request) -> Result:
    ctx = Context(request)
    try:
        attached = _add(ctx)
    except CNIError as exc:
        _report_failure(ctx, exc)
        raise
    report_added(ctx, attached)
    return attached[0][1]


def _events() -> Any:
    """:mod:`.events` when something (the daemon) imported and installed it; a standalone call
    loads it only for a failed ADD's Warning (its imports cost milliseconds)."""
    return sys.modules.get("metacni.meta.events")


def report_added(ctx: Context, attached: list[tuple[Delegate, Result]]) -> None:
    """``AddedInterface`` events, one per attachment whose result has interfaces or IPs (Multus)."""
    events = _events()
    if events is not None and ctx.pod.known:
        from metacni.spec.results import convert

        results = [(d, convert(r, "1.1.0")) for d, r in attached]
        events.added_interfaces(ctx.request.config, ctx.pod.namespace, ctx.pod.name, ctx.pod.uid,
                                [(d.label, d.ifname, [ip.address for ip in r.ips]) for d, r in results
                                 if r.interfaces or r.ips])


def _report_failure(ctx: Context, exc: CNIError) -> None:
    """A Warning event naming the network and the reason: queued in the daemon; handed to a
    detached poster by a standalone call (:mod:`.event_handoff`)."""
    events = _events()
    if not ctx.pod.known or (events is None and not skel.one_shot):
        return
    if events is None:
        from . import events
    reason = events.NO_NETWORK_FOUND if exc.msg == "network not found" else events.ADD_FAILED
    message = f"{exc.msg}: {exc.details}" if exc.details else exc.msg
    if skel.one_shot:
        from .event_handoff import post_detached

        post_detached(ctx.request.config, events.Event(ctx.pod.namespace, ctx.pod.name, ctx.pod.uid, events.WARNING,
                                                       reason, message))
    else:
        events.add_failed(ctx.request.config, ctx.pod.namespace, ctx.pod.name, ctx.pod.uid, reason, message)


def check_host_ports(ctx: Context, delegates: list[Delegate]) -> None:
    """The annotation's host ports are not another pod's (:mod:`.hostports`); reads the node's
    cached attachments only when the annotation asks for host ports."""
    if not any(d.selection is not None and d.selection.port_mappings for d in delegates):
        return
    from . import hostports

    hostports.check_free(delegates, ctx.runner.cache.entries(), ctx.request.container_id, ctx.who)


def assign_devices(ctx: Context, delegates: list[Delegate], resources: dict[str, str],
                   in_use: frozenset[str] = frozenset()) -> list[Path]:
    """Device-plugin networks (:mod:`.devices`): their devices and device-info files; a device
    must be one the pod holds and not in ``in_use`` (given to another of its attachments)."""
    try:
        _primary_resources(ctx, delegates, resources)
    except CNIError as exc:
        raise ctx.fail(exc, "cannot resolve networks") from None
    if not any(resources.values()) and not any(d.selection and d.selection.device_id for d in delegates):
        return []
    from . import devices

    try:
        return devices.assign(delegates, resources, ctx.request.config, ctx.cfg.device_info_dir,
                              ctx.pod.namespace, ctx.pod.name, ctx.request.container_id, in_use)
    except CNIError as exc:
        raise ctx.fail(exc, "cannot assign devices") from None


def _primary_resources(ctx: Context, delegates: list[Delegate], resources: dict[str, str]) -> None:
    """The resource names of NADs serving as the primary or a defaultNetwork (Multus gives them
    devices too). Their label is ``<ns>/<name>`` (a CNI network name has no ``/``); the
    annotation's NADs were recorded when they were read."""
    for d in delegates:
        if "/" in d.label and d.label not in resources and ctx.view is not None:
            namespace, name = d.label.split("/", 1)
            nad = ctx.view.get_nad(namespace, name)
            resources[d.label] = nad_resource_name(nad) if nad is not None else ""


def _add(ctx: Context) -> list[tuple[Delegate, Result]]:
    request = ctx.request
    wait_ready(ctx.cfg, ctx.who)
    resources: dict[str, str] = {}
    try:
        delegates = _plan(ctx, resources)
    except CNIError as exc:
        raise ctx.fail(exc, "cannot resolve networks") from None
    _undo_previous_attempt(ctx)
    clash = existing_ifnames(request.netns, [d.ifname for d in delegates])
    if clash:
        raise CNIError(Code.INVALID_CONFIG, "interface already exists",
                       f"{ctx.who}: {', '.join(clash)} already exist in {request.netns} and were not created "
                       "by metacni")
    check_host_ports(ctx, delegates)
    device_files = assign_devices(ctx, delegates, resources)
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
            from . import network_status  # only an ADD that reaches the API needs it

            entries = network_status.network_status(attached, request.container_id, ctx.cfg.device_info_dir)
            try:
                ctx.view.patch_pod_network_status(ctx.pod.namespace, ctx.pod.name, entries, uid=ctx.api_uid,
                                                  container_id=request.container_id)
            except CNIError as exc:
                raise ctx.fail(exc, "writing network-status") from None
    except BaseException:
        rollback(ctx, [d for d, _ in attached])
        remove_device_files(ctx, delegates, device_files)
        delegate_cache.remove(ctx.cfg.cni_dir, request.container_id)
        raise
    return attached


def remove_device_files(ctx: Context, delegates: list[Delegate], written: list[Path] | None = None) -> None:
    """The NPWG device-info files of the attachments given a device (ADD rollback, DEL)."""
    if written or any("deviceID" in d.capability_args for d in delegates):  # devices.DEVICE_ID_CAP
        from . import devices

        devices.remove_files(written or [])
        devices.cleanup(delegates, ctx.cfg.device_info_dir, ctx.request.container_id)


def _rewrite_cached_result(ctx: Context, d: Delegate, result: Result) -> None:
    entry = ctx.runner.cache.read(d.net.name, ctx.request.container_id, d.ifname)
    if entry is not None:
        entry.result = result.to_wire()
        ctx.runner.cache.write(entry)


def rollback(ctx: Context, done: list[Delegate]) -> None:
    for d in reversed(done):
        try:
            ctx.runner.delete(d.net, ctx.rt(d))
        except Exception as exc:  # the other attachments are still removed
            log.error("%s: rollback of network %s (%s) failed: %s", ctx.who, d.label, d.ifname, exc)


def _undo_previous_attempt(ctx: Context) -> None:
    """A retried ADD of our own making (Multus #1312): remove what the earlier attempt left."""
    try:
        record = delegate_cache.read(ctx.cfg.cni_dir, ctx.request.container_id)
    except delegate_cache.CorruptCache as exc:
        log.error("%s: %s; cleaning up from the result cache", ctx.who, exc)
        record = None
        delegate_cache.quarantine(exc.path)
        delete_all(ctx, _fallback_delegates(ctx), strict=False)
        return
    if record is None:
        return
    log.warning("%s: ADD for a container metacni already attached; removing the earlier attachments first",
                ctx.who)
    delete_all(ctx, record.delegates, strict=False, netns=record.netns or None)
    delegate_cache.remove(ctx.cfg.cni_dir, ctx.request.container_id)


# ------------------------------------------------------------------------------ DEL
def cached_delegates(ctx: Context, container_id: str, primary_ifname: str) -> list[tuple[Delegate, CacheEntry]]:
    """Every libcni result-cache entry metacni holds for ``container_id`` as a delegate (the
    entry keeps the config used at ADD), primary first. The meta network's own entries are
    skipped: a cniDir shared with the runtime's cache must not make metacni delegate to itself."""
    found: list[tuple[Delegate, CacheEntry]] = []
    for entry in ctx.runner.cache.entries():
        if entry.container_id != container_id or entry.network_name == ctx.cfg.name:
            continue
        try:
            net = network_list_from_bytes(entry.config, f"cached config of {entry.network_name}")
        except CNIError as exc:
            log.error("%s: cached config of %s/%s unusable: %s", ctx.who, entry.network_name, entry.ifname, exc)
            continue
        found.append((Delegate(label=entry.network_name, net=net, ifname=entry.ifname,
                               primary=entry.ifname == primary_ifname,
                               capability_args=dict(entry.capability_args)), entry))
    found.sort(key=lambda item: (not item[0].primary, _natural(item[0].ifname)))
    return found


def _fallback_delegates(ctx: Context) -> list[Delegate]:
    """What DEL can identify without a record: every libcni result-cache entry of this
    container (it holds the config used at ADD), plus the primary from the current config."""
    found = [d for d, _ in cached_delegates(ctx, ctx.request.container_id, ctx.request.ifname)]
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


def delete_all(ctx: Context, delegates: list[Delegate], *, strict: bool, netns: str | None = None) -> None:
    """DEL every delegate in reverse order; all are attempted (spec 7.2)."""
    errors: list[CNIError] = []
    for d in reversed(delegates):
        if trust.skip_meta_delegate(d.net.data, d.net.plugins, f"{ctx.who}: network {d.label} ({d.ifname})"):
            continue
        try:
            ctx.runner.delete(d.net, ctx.rt(d, netns))
        except CNIError as exc:
            log.error("%s: DEL of network %s (%s) failed: %s", ctx.who, d.label, d.ifname, exc)
            errors.append(CNIError(exc.code, exc.msg, f"network {d.label} ({d.ifname}): {exc.details}"))
        except Exception as exc:  # a plugin's bug: the other networks are still deleted
            log.exception("%s: DEL of network %s (%s) crashed", ctx.who, d.label, d.ifname)
            errors.append(CNIError(Code.INTERNAL, "internal error",
                                   f"network {d.label} ({d.ifname}): {type(exc).__name__}: {exc}"))
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
        reason = str(corrupt) if corrupt else f"no delegate cache {delegate_cache.path(ctx.cfg.cni_dir, cid)}"
        log.error("%s: DEL without a usable delegate record (%s); removing what can be identified: %s",
                  ctx.who, reason, ", ".join(f"{d.label} ({d.ifname})" for d in delegates) or "nothing")
        if not delegates:
            raise CNIError(Code.IO_FAILURE, "cannot identify networks to delete",
                           f"{ctx.who}: {reason}, and neither the primary network nor any cached result "
                           "could be found")
    delete_all(ctx, delegates, strict=True)
    remove_device_files(ctx, delegates)
    if corrupt is not None:
        delegate_cache.quarantine(corrupt.path)
    delegate_cache.remove(ctx.cfg.cni_dir, cid)


# ------------------------------------------------------------------------------ CHECK
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


def current_primary(ctx: Context) -> tuple[str, NetworkList]:
    """The primary from the current config, without the API when a local file names it."""
    try:
        return resolve_primary(ctx.cfg, None)
    except CNIError:
        if ctx.view is None:
            raise
        return resolve_primary(ctx.cfg, ctx.view)


# ------------------------------------------------------------------------------ logging
_LEVELS = {"debug": logging.DEBUG, "verbose": logging.INFO, "error": logging.ERROR, "panic": logging.CRITICAL}
_configured: set[Path] = set()


def configure_logging(cfg: MetaConfig) -> None:
    """logFile/logLevel (Multus names and levels); once per process and file."""
    level = _LEVELS.get(cfg.log_level.lower()) if cfg.log_level else None
    if level is not None:
        logging.getLogger("metacni").setLevel(level)
    if not (cfg.log_file is not None or "logToStderr" in cfg.raw or "logOptions" in cfg.raw):
        return
    from . import logfile  # Multus' logToStderr/logOptions (lumberjack rotation)

    options, to_stderr = logfile.LogOptions.from_conf(cfg.raw), logfile.log_to_stderr(cfg.raw)
    if cfg.log_file is not None and cfg.log_file not in _configured:
        _configured.add(cfg.log_file)
        try:
            handler = logfile.file_handler(cfg.log_file, options)
        except OSError as exc:
            log.error("cannot open logFile %s: %s", cfg.log_file, exc)
            return
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        logging.getLogger("metacni").addHandler(handler)
    if not to_stderr:
        logfile.keep_off_stderr()
