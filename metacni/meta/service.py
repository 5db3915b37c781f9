"""The meta plugin's verbs: resolve the pod's networks, run each chain, undo on failure.

ADD: delegates are recorded (``delegate_cache``) before the first runs; a failure deletes
every attachment already made, in reverse, and the error names pod, network and reason.
DEL: works from the record alone (no API); a missing or corrupt record is logged as an
error and DEL still removes the primary and every attachment the libcni result cache
identifies for the container.
GC: full teardown of every container whose primary attachment the runtime no longer lists,
then GC of every delegate network. STATUS: the readiness indicator file and the primary's
STATUS. ADD (never DEL) first waits for the readiness indicator file.
"""

from __future__ import annotations

import os
import sys
import time

from metacni.engine.cache import CacheEntry, ResultCache
from metacni.engine.chain import ChainRunner, RuntimeConf
from metacni.engine.request import Request
from metacni.spec import lazylog
from metacni.spec.args import CniArgs
from metacni.spec.config import NetworkList, network_list_from_bytes
from metacni.spec.errors import CNIError, Code
from metacni.spec.record import field, record
from metacni.spec.results import Result

from . import defaultroute, delegate_cache, trust
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

TYPE_CHECKING = False  # typing costs ~5 ms per standalone CNI call; mypy treats this name as True
if TYPE_CHECKING:
    from typing import Any

    from .kube import KubeView

log = lazylog.getLogger(__name__)
POD_ANNOTATIONS_CAP = "io.kubernetes.cri.pod-annotations"


@record()
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


def _plan(ctx: Context, resources: dict[str, str] | None = None) -> list[Delegate]:
    cfg, ns = ctx.cfg, ctx.pod.namespace or "default"
    annotations = _annotations(ctx)
    selections = parse_networks(annotations.get(NETWORKS), ns)
    override = parse_default_network(annotations.get(DEFAULT_NETWORK), cfg.multus_namespace)
    skip_defaults = (ns in cfg.system_namespaces
                     or annotations.get(SKIP_DEFAULT_NETWORKS, "").lower() == "true")
    # Checked before any NAD is looked up: 1 for the primary, then defaultNetworks, then the pod's.
    _check_attachment_cap(ctx, 1 + (0 if skip_defaults else len(cfg.default_networks)) + len(selections))
    runtime_caps = ctx.request.runtime_config.to_plain()
    return build_delegates(cfg, ctx.view if _needs_view(cfg, selections, override) else None,
                           pod_namespace=ns, runtime_ifname=ctx.request.ifname, runtime_caps=runtime_caps,
                           selections=selections, override=override, with_default_networks=not skip_defaults,
                           resources=resources)


def _check_attachment_cap(ctx: Context, count: int) -> None:
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


def indicator_present(path: str) -> bool:
    """The one place the readiness indicator file is looked at (ADD's wait and STATUS)."""
    return os.path.exists(path)


def wait_ready(cfg: MetaConfig, who: str) -> None:
    """readinessindicatorfile: before ADD touches anything, wait until the primary network has
    declared itself ready (Multus pain points #402, #1527: back off rather than give a pod a
    half-working network). Polls up to ``readinessTimeout`` and fails with 11 (try again
    later) so the runtime retries the sandbox; nothing has been configured at that point."""
    path = cfg.readiness_indicator_file
    if not path:
        return
    deadline = time.monotonic() + cfg.readiness_timeout
    while not indicator_present(path):
        left = deadline - time.monotonic()
        if left <= 0:
            raise CNIError(Code.TRY_AGAIN_LATER, "primary network not ready",
                           f"{who}: readiness indicator file {path} did not appear within "
                           f"{cfg.readiness_timeout:g}s; is the default network ready?")
        time.sleep(min(READINESS_POLL, left))


def _existing_ifnames(netns_path: str, names: list[str]) -> list[str]:
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
    _report_added(ctx, attached)
    return attached[0][1]


def _events() -> Any:
    """:mod:`.events` when something (the daemon) imported and installed it; a standalone call
    never loads it (its imports cost milliseconds)."""
    return sys.modules.get("metacni.meta.events")


def _report_added(ctx: Context, attached: list[tuple[Delegate, Result]]) -> None:
    """``AddedInterface`` events, one per attachment whose result has interfaces or IPs (Multus)."""
    events = _events()
    if events is not None and ctx.pod.known:
        from metacni.spec.results import convert

        results = [(d, convert(r, "1.1.0")) for d, r in attached]
        events.added_interfaces(ctx.request.config, ctx.pod.namespace, ctx.pod.name, ctx.pod.uid,
                                [(d.label, d.ifname, [ip.address for ip in r.ips]) for d, r in results
                                 if r.interfaces or r.ips])


def _report_failure(ctx: Context, exc: CNIError) -> None:
    """A Warning event naming the network and the reason."""
    events = _events()
    if events is not None and ctx.pod.known:
        reason = events.NO_NETWORK_FOUND if exc.msg == "network not found" else events.ADD_FAILED
        events.add_failed(ctx.request.config, ctx.pod.namespace, ctx.pod.name, ctx.pod.uid, reason,
                          f"{exc.msg}: {exc.details}" if exc.details else exc.msg)


def _assign_devices(ctx: Context, delegates: list[Delegate], resources: dict[str, str]) -> list[str]:
    """Device-plugin networks (:mod:`.devices`): their devices and device-info files."""
    try:
        _primary_resources(ctx, delegates, resources)
    except CNIError as exc:
        raise ctx.fail(exc, "cannot resolve networks") from None
    if not any(resources.values()) and not any(d.selection and d.selection.device_id for d in delegates):
        return []
    from . import devices

    try:
        return devices.assign(delegates, resources, ctx.request.config, ctx.cfg.device_info_dir,
                              ctx.pod.namespace, ctx.pod.name, ctx.request.container_id)
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
    clash = _existing_ifnames(request.netns, [d.ifname for d in delegates])
    if clash:
        raise CNIError(Code.INVALID_CONFIG, "interface already exists",
                       f"{ctx.who}: {', '.join(clash)} already exist in {request.netns} and were not created "
                       "by metacni")
    device_files = _assign_devices(ctx, delegates, resources)
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
            from . import status  # only an ADD that reaches the API needs it

            entries = status.network_status(attached, request.container_id, ctx.cfg.device_info_dir)
            try:
                ctx.view.patch_pod_network_status(ctx.pod.namespace, ctx.pod.name, entries)
            except CNIError as exc:
                raise ctx.fail(exc, "writing network-status") from None
    except BaseException:
        _rollback(ctx, [d for d, _ in attached])
        _remove_device_files(ctx, delegates, device_files)
        delegate_cache.remove(ctx.cfg.cni_dir, request.container_id)
        raise
    return attached


def _remove_device_files(ctx: Context, delegates: list[Delegate], written: list[str] | None = None) -> None:
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


def _rollback(ctx: Context, done: list[Delegate]) -> None:
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
        _delete_all(ctx, _fallback_delegates(ctx), strict=False)
        return
    if record is None:
        return
    log.warning("%s: ADD for a container metacni already attached; removing the earlier attachments first",
                ctx.who)
    _delete_all(ctx, record.delegates, strict=False, netns=record.netns or None)
    delegate_cache.remove(ctx.cfg.cni_dir, ctx.request.container_id)


# ------------------------------------------------------------------------------ DEL
def _cached_delegates(ctx: Context, container_id: str, primary_ifname: str) -> list[tuple[Delegate, CacheEntry]]:
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
    found = [d for d, _ in _cached_delegates(ctx, ctx.request.container_id, ctx.request.ifname)]
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
        reason = str(corrupt) if corrupt else f"no delegate cache {os.path.join(ctx.cfg.cni_dir, cid)}"
        log.error("%s: DEL without a usable delegate record (%s); removing what can be identified: %s",
                  ctx.who, reason, ", ".join(f"{d.label} ({d.ifname})" for d in delegates) or "nothing")
        if not delegates:
            raise CNIError(Code.IO_FAILURE, "cannot identify networks to delete",
                           f"{ctx.who}: {reason}, and neither the primary network nor any cached result "
                           "could be found")
    _delete_all(ctx, delegates, strict=True)
    _remove_device_files(ctx, delegates)
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


@record()
class _Known:
    """What metacni holds for one container: its delegate record (when readable) and the
    result-cache entries of the networks it attached."""

    container_id: str
    record: delegate_cache.CachedAttachments | None = None
    corrupt: delegate_cache.CorruptCache | None = None
    entries: list[CacheEntry] = field(default_factory=list)

    def is_valid(self, valid: set[tuple[str, str]]) -> bool:
        """The runtime lists the meta network's attachments, i.e. our primary's (containerID,
        ifname). Without a readable record the primary's ifname is not certain, so any listed
        attachment of the container keeps it: GC must never tear down a live pod."""
        if self.record is not None:
            return (self.container_id, self.record.delegates[0].ifname) in valid
        if self.entries:
            return any((self.container_id, e.ifname) in valid for e in self.entries)
        return any(cid == self.container_id for cid, _ in valid)


def _known_containers(ctx: Context) -> dict[str, _Known]:
    """Every container metacni knows: a record under cniDir, or an entry in its result cache
    (a record lost or corrupted must not hide an attachment from GC, Multus #891)."""
    known: dict[str, _Known] = {}
    for cid in delegate_cache.container_ids(ctx.cfg.cni_dir):
        k = known[cid] = _Known(cid)
        try:
            k.record = delegate_cache.read(ctx.cfg.cni_dir, cid)
        except delegate_cache.CorruptCache as exc:
            k.corrupt = exc
    for entry in ctx.runner.cache.entries():
        if entry.network_name != ctx.cfg.name:  # the runtime's own entry for the meta network
            known.setdefault(entry.container_id, _Known(entry.container_id)).entries.append(entry)
    return known


def _gc_request(request: Request, k: _Known) -> Request:
    """A DEL request for a stale container, rebuilt from what was stored at ADD (netns,
    CNI_ARGS), as libcni's GC does from its cache; GC itself carries no attachment."""
    from metacni.spec.record import replace

    netns = k.record.netns if k.record else next((e.netns for e in k.entries if e.netns), "")
    primary = k.record.delegates[0] if k.record else None
    ifname = primary.ifname if primary else "eth0"
    cached = next((e for e in k.entries if e.ifname == ifname), k.entries[0] if k.entries else None)
    if cached is not None and cached.cni_args:
        args = cached.args
    elif k.record and k.record.pod_name:
        args = CniArgs([("K8S_POD_NAMESPACE", k.record.pod_namespace), ("K8S_POD_NAME", k.record.pod_name),
                        ("K8S_POD_INFRA_CONTAINER_ID", k.container_id)])
    else:
        args = CniArgs()
    inv = replace(request.invocation, command="DEL", container_id=k.container_id, netns=netns, ifname=ifname,
                  args=args)
    return Request(invocation=inv, config=request.config, invoker=request.invoker)


def _teardown(request: Request, k: _Known, primary_name: str) -> list[Delegate]:
    """The full DEL of a stale container: every network of its record plus any cached one the
    record lacks, in reverse ADD order; the record goes only when every DEL succeeded, so the
    next GC (or DEL) retries the rest. Returns the delegates torn down."""
    sub = Context(_gc_request(request, k))
    delegates = list(k.record.delegates) if k.record else []
    covered = {(d.net.name, d.ifname) for d in delegates}
    primary_ifname = sub.request.ifname if k.record else next(
        (e.ifname for e in k.entries if e.network_name == primary_name), "eth0")
    for d, _ in _cached_delegates(sub, k.container_id, primary_ifname):
        if (d.net.name, d.ifname) not in covered:
            d.primary = d.primary and k.record is None  # with a record, its first is the primary
            delegates.append(d)
    log.warning("%s (container %s): not among the runtime's valid attachments; GC removes %s", sub.who,
                k.container_id, ", ".join(f"{d.label} ({d.ifname})" for d in delegates) or "its record")
    _delete_all(sub, delegates, strict=True)
    _remove_device_files(sub, delegates)
    if k.corrupt is not None:
        delegate_cache.quarantine(k.corrupt.path)
    delegate_cache.remove(sub.cfg.cni_dir, k.container_id)
    return delegates


def _current_primary(ctx: Context) -> tuple[str, NetworkList]:
    """The primary from the current config, without the API when a local file names it."""
    try:
        return resolve_primary(ctx.cfg, None)
    except CNIError:
        if ctx.view is None:
            raise
        return resolve_primary(ctx.cfg, ctx.view)


def gc(request: Request) -> None:
    """CNI GC (spec 1.1): tear down every container metacni knows whose primary attachment the
    runtime no longer lists, then pass GC on to every delegate network with the attachments
    that remain on it, so IPAM and firewall plugins drop what no live attachment holds (a
    crash mid-ADD/DEL, a DEL never sent). Continues past errors and reports them together."""
    ctx = Context(request)
    valid = set(request.valid_attachments)
    errors: list[str] = []
    try:
        primary_label, primary = _current_primary(ctx)
    except CNIError as exc:
        errors.append(f"primary network: {exc}")
        primary_label, primary = "", None
    known = _known_containers(ctx)
    held: dict[str, set[tuple[str, str]]] = {}  # network name -> attachments left in place
    nets: dict[str, NetworkList] = {primary.name: primary} if primary else {}
    stale: list[_Known] = []

    def hold(k: _Known) -> None:
        for d in k.record.delegates if k.record else []:
            held.setdefault(d.net.name, set()).add((k.container_id, d.ifname))
            nets.setdefault(d.net.name, d.net)
        for e in k.entries:
            held.setdefault(e.network_name, set()).add((k.container_id, e.ifname))

    for _, k in sorted(known.items()):
        if k.is_valid(valid):
            hold(k)
        else:
            stale.append(k)
    failed: list[_Known] = []
    for k in stale:
        try:
            for d in _teardown(request, k, primary.name if primary else ""):
                nets.setdefault(d.net.name, d.net)
        except Exception as exc:  # not only CNIError: the other containers are still collected
            errors.append(f"container {k.container_id}: {exc}")
            failed.append(k)
    for k in failed:
        # Half torn down: the next GC retries it whole; its networks' GC must not release
        # leases or rules out from under the attachments still in place.
        hold(k)
    for k in known.values():  # networks known only from a cache entry
        for e in k.entries:
            if e.network_name not in nets:
                try:
                    nets[e.network_name] = network_list_from_bytes(e.config, f"cached config of {e.network_name}")
                except CNIError as exc:
                    errors.append(f"network {e.network_name}: {exc}")
    for name in sorted(nets, key=lambda n: (primary is None or n != primary.name, n)):
        keep = sorted(held.get(name, set()) | valid)
        try:
            ctx.runner.gc(nets[name], keep)
        except Exception as exc:  # every network gets its GC
            label = primary_label if primary and name == primary.name else name
            errors.append(f"network {label}: {exc}")
    if errors:
        raise CNIError(Code.UNKNOWN, "garbage collection had errors", "; ".join(errors))


def status_check(request: Request) -> None:
    """CNI STATUS (spec 1.1): ready when the readiness indicator file (if configured) exists and
    the primary network's STATUS succeeds; otherwise 50 naming what is not ready (51 is kept
    when that is all the primary reports). A primary below 1.1.0 is not asked, as libcni does
    not send STATUS to it; STATUS for the meta config itself below 1.1.0 never reaches here
    (libcni does not send it and skel refuses it)."""
    ctx = Context(request)
    problems: list[CNIError] = []
    path = ctx.cfg.readiness_indicator_file
    if path and not indicator_present(path):
        problems.append(CNIError(Code.NOT_AVAILABLE, "readiness indicator file missing",
                                 f"readiness indicator file {path} does not exist (is the default network ready?)"))
    try:
        label, primary = _current_primary(ctx)
        try:
            ctx.runner.status(primary)
        except CNIError as exc:
            problems.append(CNIError(exc.code, f"primary network not ready: {exc.msg}",
                                     f"primary network {label}: {exc.msg}: {exc.details}" if exc.details
                                     else f"primary network {label}: {exc.msg}"))
    except CNIError as exc:
        problems.append(CNIError(Code.NOT_AVAILABLE, "primary network not ready",
                                 f"primary network: {exc.msg}: {exc.details}"))
    if problems:
        code = Code.LIMITED_CONNECTIVITY if all(p.code == Code.LIMITED_CONNECTIVITY for p in problems) \
            else Code.NOT_AVAILABLE
        raise CNIError(code, problems[0].msg if len(problems) == 1 else "metacni not ready",
                       "; ".join(p.details for p in problems))


# ------------------------------------------------------------------------------ logging
_LEVELS = {"debug": lazylog.DEBUG, "verbose": lazylog.INFO, "error": lazylog.ERROR, "panic": lazylog.CRITICAL}
_configured: set[str] = set()


def configure_logging(cfg: MetaConfig) -> None:
    """logFile/logLevel (Multus names and levels); once per process and file. A level alone is
    applied when ``logging`` is first needed (:mod:`metacni.spec.lazylog`); a file opens now."""
    level = _LEVELS.get(cfg.log_level.lower()) if cfg.log_level else None
    if level is not None:
        lazylog.enable(level)
        lazylog.when_imported(lambda logging: logging.getLogger("metacni").setLevel(level))
    if cfg.log_file and cfg.log_file not in _configured:
        _configured.add(cfg.log_file)
        logging = lazylog.logging_module()
        try:
            handler = logging.FileHandler(cfg.log_file)
        except OSError as exc:
            log.error("cannot open logFile %s: %s", cfg.log_file, exc)
            return
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        logging.getLogger("metacni").addHandler(handler)
