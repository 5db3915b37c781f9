"""Dynamic attachments: make a running pod's interfaces follow its networks annotation.

:func:`reconcile` compares the pod's delegate record (:mod:`.delegate_cache`, written at ADD)
with the annotation's selections and runs the difference through the same building blocks as
ADD and DEL (:mod:`.service`): the same tenant checks (:func:`.networks.build_delegates`), the
same chain runner and result cache, the same rollback. Contracts:

- Entries present in both are left alone (their interfaces, addresses and caches untouched);
  what was removed is detached (DEL), what was added is attached under the requested interface
  name or the next free ``netN``.
- The record is rewritten *before* an attach runs (so a crash mid-attach still leaves DEL and GC
  a complete list) and after every detach succeeds (a failed detach stays recorded, so the pod's
  DEL retries it).
- A failed attach rolls back every attachment of this pass, restores the record and raises the
  CNIError; the pod is as it was. An annotation that fails to parse changes nothing (CNIError).
- network-status is rewritten from the result cache once the interfaces changed.

The caller serialises calls with the runtime's ADD/DEL of the same container (the daemon's
per-container lock) and decides whether the pod may be changed at all (deleted, opted out).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from metacni.engine.invoke import Invoker
from metacni.engine.request import Invocation, Request
from metacni.spec import naming, safejson
from metacni.spec.args import CniArgs
from metacni.spec.errors import CNIError, Code
from metacni.spec.results import Result

from . import delegate_cache, service
from .annotations import NETWORKS, NetworkSelection, parse_networks
from .networks import Delegate, build_delegates, check_own_name, node_network_names
from .selection_policy import check_selection

log = logging.getLogger(__name__)
OPT_OUT = "metacni.io/dynamic-networks"  # "false": the daemon never hot-plugs this pod


@dataclass
class Outcome:
    """What one pass did (interface names)."""

    attached: list[str] = field(default_factory=list)
    detached: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.attached or self.detached)


def opted_out(annotations: Mapping[str, str]) -> bool:
    return str(annotations.get(OPT_OUT, "")).strip().lower() == "false"


def _key(sel: NetworkSelection | None) -> str:
    return json.dumps(sel.to_json() if sel is not None else None, sort_keys=True)


def _request(conf: dict[str, Any], record: delegate_cache.CachedAttachments, uid: str,
             invoker: Invoker | None, cni_path: tuple[str, ...] = ()) -> Request:
    args = [("K8S_POD_NAMESPACE", record.pod_namespace), ("K8S_POD_NAME", record.pod_name),
            ("K8S_POD_INFRA_CONTAINER_ID", record.container_id)]
    if uid:
        args.append(("K8S_POD_UID", uid))
    inv = Invocation(command="ADD", container_id=record.container_id, netns=record.netns,
                     ifname=record.delegates[0].ifname, args=CniArgs(args), cni_path=cni_path)
    return Request(invocation=inv, config=conf, invoker=invoker)


def find_container(cni_dir: str | os.PathLike[str], namespace: str, name: str) -> str | None:
    """The container whose delegate record belongs to pod ``namespace/name`` (None: none yet)."""
    for cid in delegate_cache.container_ids(cni_dir):
        try:
            record = delegate_cache.read(cni_dir, cid)
        except delegate_cache.CorruptCache:
            continue
        if record is not None and (record.pod_namespace, record.pod_name) == (namespace, name):
            return cid
    return None


def plan(record: delegate_cache.CachedAttachments,
         selections: list[NetworkSelection]) -> tuple[list[Delegate], list[Delegate], list[NetworkSelection]]:
    """(kept, removed, added): the record's annotation attachments matched with ``selections``
    by their whole selection (a changed ``ips`` is a detach and an attach)."""
    current = [d for d in record.delegates if not d.primary and d.selection is not None]
    unmatched = list(current)
    added: list[NetworkSelection] = []
    for sel in selections:
        match = next((d for d in unmatched if _key(d.selection) == _key(sel)), None)
        if match is None:
            added.append(sel)
        else:
            unmatched.remove(match)
    kept = [d for d in current if d not in unmatched]
    return kept, unmatched, added


def _free_names(taken: set[str], count: int) -> list[str]:
    names: list[str] = []
    index = 1
    while len(names) < count:
        name = f"net{index}"
        if name not in taken:
            names.append(name)
            taken.add(name)
        index += 1
    return names


def reconcile(conf: dict[str, Any], container_id: str, annotations: Mapping[str, str], *,
              pod_uid: str = "", invoker: Invoker | None = None, cni_path: tuple[str, ...] = ()) -> Outcome:
    """Bring the container's annotation attachments in line with ``annotations`` (see the
    module's contracts). ``conf`` is the node's meta config. Raises CNIError (nothing changed
    by the failing step; earlier detaches of the same pass stay done). ``cni_path``: where
    delegate binaries are (the runtime's CNI_PATH at ADD; empty: the config's binDir)."""
    record = delegate_cache.read(cni_dir(conf), container_id)
    if record is None or not record.netns or not Path(record.netns).exists():
        return Outcome()  # not attached by metacni yet, or the sandbox is gone
    ctx = service.Context(_request(conf, record, pod_uid, invoker, cni_path))
    namespace = record.pod_namespace or "default"
    try:
        selections = parse_networks(annotations.get(NETWORKS), namespace)
    except CNIError as exc:
        raise ctx.fail(exc, f"cannot parse {NETWORKS}; nothing changed") from None
    kept, removed, added = plan(record, selections)
    outcome = Outcome()
    if not removed and not added:
        return outcome
    if removed:
        outcome.detached = _detach(ctx, record, removed)
        record.delegates = [d for d in record.delegates if d not in removed or d.ifname not in outcome.detached]
        delegate_cache.write(ctx.cfg.cni_dir, record)
    if added:
        try:
            fresh = _attach(ctx, record, list(record.delegates), added)  # a failed detach keeps its name
        except CNIError:
            if outcome.detached:  # what this pass did detach is gone: say so before failing
                _write_status(ctx, record)
            raise
        outcome.attached = [d.ifname for d, _ in fresh]
        service.report_added(ctx, fresh)
    _write_status(ctx, record)
    log.info("%s: dynamic networks: attached %s, detached %s", ctx.who, outcome.attached or "nothing",
             outcome.detached or "nothing", extra={"kept": [d.ifname for d in kept]})
    return outcome


def cni_dir(conf: Mapping[str, Any]) -> Path:
    """The meta config's cniDir (where the delegate records are)."""
    from .config import MetaConfig

    return MetaConfig.from_dict(dict(conf)).cni_dir


def _detach(ctx: service.Context, record: delegate_cache.CachedAttachments, removed: list[Delegate]) -> list[str]:
    """DEL each removed attachment (reverse order); the names of those that went."""
    done: list[str] = []
    for d in reversed(removed):
        try:
            ctx.runner.delete(d.net, ctx.rt(d, record.netns))
            done.append(d.ifname)
        except CNIError as exc:
            log.error("%s: detaching network %s (%s) failed: %s; kept for the pod's DEL", ctx.who, d.label,
                      d.ifname, exc)
    service.remove_device_files(ctx, [d for d in removed if d.ifname in done])
    return done


def _attach(ctx: service.Context, record: delegate_cache.CachedAttachments, others: list[Delegate],
            added: list[NetworkSelection]) -> list[tuple[Delegate, Result]]:
    """ADD each added selection as ADD would (tenant checks included); all or nothing."""
    cfg = ctx.cfg
    service.check_attachment_cap(ctx, len(others) + len(added))
    resources: dict[str, str] = {}
    try:
        built = build_delegates(cfg, ctx.view, pod_namespace=record.pod_namespace or "default",
                                runtime_ifname=record.delegates[0].ifname, runtime_caps={},
                                selections=added, override=None, with_default_networks=False,
                                resources=resources)[1:]
    except CNIError as exc:
        raise ctx.fail(exc, "cannot resolve networks") from None
    taken = {d.ifname for d in others}
    auto = [d for d in built if not (d.selection and d.selection.interface)]
    for d, name in zip(auto, _free_names(taken | {d.ifname for d in built if d not in auto}, len(auto)),
                       strict=True):
        d.ifname = name
    clash = [d.ifname for d in built if d.ifname in taken]
    clash += service.existing_ifnames(record.netns, [d.ifname for d in built if d.ifname not in clash])
    if clash:
        raise CNIError(Code.INVALID_CONFIG, "interface already exists",
                       f"{ctx.who}: {', '.join(clash)} already exist in {record.netns}; nothing attached")
    service.check_host_ports(ctx, built)  # the annotation's host ports are not another pod's, as at ADD
    # a deviceID (the annotation's, or a resourceName NAD's) must be a device the pod holds and
    # none of its other attachments has: as at ADD (devices.assign)
    in_use = frozenset(str(d.capability_args["deviceID"]) for d in others if "deviceID" in d.capability_args)
    device_files = service.assign_devices(ctx, built, resources, in_use)
    before = list(record.delegates)
    record.delegates = before + built
    attached: list[tuple[Delegate, Result]] = []
    try:
        delegate_cache.write(cfg.cni_dir, record)
        for d in built:
            try:
                attached.append((d, ctx.runner.add(d.net, ctx.rt(d, record.netns))))
            except CNIError as exc:
                raise ctx.fail(exc, f"network {d.label} ({d.ifname}) failed: {exc.msg}") from None
    except BaseException:
        service.rollback(ctx, [d for d, _ in attached])
        service.remove_device_files(ctx, built, device_files)
        record.delegates = before
        delegate_cache.write(cfg.cni_dir, record)
        raise
    return attached


def _write_status(ctx: service.Context, record: delegate_cache.CachedAttachments) -> None:
    """network-status from the result cache of every recorded attachment."""
    if ctx.view is None or not record.pod_name:
        return
    from .status_repair import record_status

    entries = record_status(record, ctx.runner.cache, ctx.cfg.device_info_dir)
    ctx.view.patch_pod_network_status(record.pod_namespace, record.pod_name, entries,
                                      container_id=record.container_id)


def report_failure(conf: dict[str, Any], namespace: str, name: str, uid: str, exc: CNIError) -> None:
    """A Warning event for a failed hot-plug (the daemon's event recorder, when installed)."""
    from . import events

    events.add_failed(conf, namespace, name, uid, events.ADD_FAILED,
                      f"dynamic networks: {exc.msg}: {exc.details}" if exc.details else f"dynamic networks: {exc.msg}")


# ------------------------------------------------------------------------------ Multus /delegate
def _record_for(conf: dict[str, Any], container_id: str) -> delegate_cache.CachedAttachments:
    record = delegate_cache.read(cni_dir(conf), container_id)
    if record is None:
        raise CNIError(Code.UNKNOWN_CONTAINER, "no attachments recorded",
                       f"container {container_id}: metacni has no delegate record (was it ADDed through metacni?)")
    return record


def delegate_add(conf: dict[str, Any], container_id: str, ifname: str, net_config: bytes,
                 attributes: Mapping[str, Any] | None = None, *, pod_uid: str = "",
                 invoker: Invoker | None = None, cni_path: tuple[str, ...] = ()) -> Result:
    """Multus' ``/delegate`` ADD: attach ``net_config`` (a NAD's CNI config, tenant input: it
    passes the same sanitising as a NAD's ``spec.config``) as ``ifname`` to a container metacni
    attached. ``attributes``: Multus' ``interfaceAttributes`` (``ips``, ``mac``, ``cni-args``).
    Recorded like an ADD's attachment (the pod's DEL and GC remove it); all or nothing."""
    from .networks import nad_network

    naming.check_ifname(ifname)  # from the pod's annotation, through the controller: tenant input
    record = _record_for(conf, container_id)
    ctx = service.Context(_request(conf, record, pod_uid, invoker, cni_path))
    attrs = dict(attributes or {})
    try:
        text = net_config.decode()
        name = str(safejson.loads(text).get("name") or "") if text.strip().startswith("{") else ""
    except (UnicodeDecodeError, ValueError, AttributeError):
        raise CNIError(Code.DECODE_FAILURE, "invalid delegate config",
                       f"{ctx.who}: the /delegate request's config is not a JSON object") from None
    nad = {"metadata": {"namespace": record.pod_namespace, "name": name or ifname}, "spec": {"config": text}}
    cni_args = attrs.get("cni-args") if isinstance(attrs.get("cni-args"), dict) else None
    try:
        net = nad_network(nad, ctx.cfg, cni_args)
        primary = record.delegates[0]
        check_own_name(net, f"{record.pod_namespace}/{net.name}",
                       {primary.net.name: primary.label, **node_network_names(ctx.cfg, ctx.view)})
    except CNIError as exc:
        raise ctx.fail(exc, "cannot use the delegate config") from None
    # Multus' cmdDelegateAdd turns interfaceAttributes into a network selection element: the same
    # here, so the annotation's checks and Multus' IP=/MAC= fallback (undeclared ips/mac) apply.
    ips = attrs.get("ips")
    sel = NetworkSelection(name=net.name, namespace=record.pod_namespace, interface=ifname,
                           ips=[str(ip) for ip in ips] if isinstance(ips, list) and ips else None,
                           mac=attrs["mac"] if isinstance(attrs.get("mac"), str) and attrs["mac"] else None,
                           cni_args=cni_args)
    try:
        check_selection(sel, pod_namespace=record.pod_namespace, global_namespaces=ctx.cfg.global_namespaces,
                        policy=ctx.cfg.policy, what="delegate network")
    except CNIError as exc:
        raise ctx.fail(exc, "refused interfaceAttributes") from None
    caps: dict[str, Any] = {k: v for k, v in (("ips", sel.ips), ("mac", sel.mac)) if v is not None}
    if any(d.ifname == ifname for d in record.delegates) or service.existing_ifnames(record.netns, [ifname]):
        raise CNIError(Code.INVALID_CONFIG, "interface already exists",
                       f"{ctx.who}: {ifname} already exists in {record.netns}")
    service.check_attachment_cap(ctx, len(record.delegates) + 1)
    # Recorded without the selection: the annotation watcher (plan) leaves such attachments alone.
    d = Delegate(label=f"{record.pod_namespace}/{net.name}", net=net, ifname=ifname, capability_args=caps)
    before = list(record.delegates)
    record.delegates = [*before, d]
    delegate_cache.write(ctx.cfg.cni_dir, record)
    result: Result | None = None
    try:
        try:
            result = ctx.runner.add(net, ctx.rt(replace(d, selection=sel), record.netns))
        except CNIError as exc:
            raise ctx.fail(exc, f"network {d.label} ({ifname}) failed: {exc.msg}") from None
        _write_status(ctx, record)
    except BaseException:
        service.rollback(ctx, [d] if result is not None else [])
        record.delegates = before
        delegate_cache.write(ctx.cfg.cni_dir, record)
        raise
    service.report_added(ctx, [(d, result)])
    return result


def delegate_del(conf: dict[str, Any], container_id: str, ifname: str, *, pod_uid: str = "",
                 invoker: Invoker | None = None, cni_path: tuple[str, ...] = ()) -> None:
    """Multus' ``/delegate`` DEL: detach the container's non-primary ``ifname`` (none recorded:
    nothing to do, as a CNI DEL of something gone succeeds)."""
    record = delegate_cache.read(cni_dir(conf), container_id)
    if record is None:
        return
    ctx = service.Context(_request(conf, record, pod_uid, invoker, cni_path))
    found = [d for d in record.delegates if d.ifname == ifname and not d.primary]
    if not found:
        return
    service.delete_all(ctx, found, strict=True, netns=record.netns)
    service.remove_device_files(ctx, found)
    record.delegates = [d for d in record.delegates if d not in found]
    delegate_cache.write(ctx.cfg.cni_dir, record)
    _write_status(ctx, record)
