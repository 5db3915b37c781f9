"""The daemon's side of dynamic attachments (issue #19).

:class:`HotplugWatcher` receives every pod the pod informer delivers, notices a change of a
running pod's networks annotation and, on its own thread, has
:func:`metacni.meta.hotplug.reconcile` make the interfaces follow. Contracts:

- Opt-in (``dynamicNetworks``); a pod annotated ``metacni.io/dynamic-networks: "false"``, a pod
  being deleted (``deletionTimestamp``) or one metacni has not attached yet is left alone.
- Work for a container holds the same per-container lock as the runtime's ADD/DEL (``hold``).
- Edits coalesce: a pod is queued once however many events arrive, and its latest cached state
  is what is applied, so quick successive edits end in the last one's state.
- A failed pass (Warning event) is remembered with the annotation value that caused it and not
  retried until the annotation changes again: it never loops.

:func:`delegate_reply` serves Multus' ``POST /delegate`` (multus-dynamic-networks-controller).
"""

from __future__ import annotations

import binascii
import json
import logging
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

from metacni.engine.invoke import Invoker
from metacni.meta import hotplug
from metacni.meta.annotations import NETWORKS
from metacni.spec import safejson
from metacni.spec.args import CniArgs
from metacni.spec.errors import CNIError, Code

from .httpserve import Reply

if TYPE_CHECKING:
    from metacni.meta.kube_dynamic import DynamicApi

log = logging.getLogger(__name__)
JSON = dict[str, Any]
Hold = Callable[[str], AbstractContextManager[None]]
CONDITION = "metacni.io/DynamicNetworks"  # the pod condition reporting the last pass


def condition(ok: bool, reason: str, message: str) -> JSON:
    """The pod condition of a pass: True ``Applied`` or False ``AttachFailed`` with the reason."""
    return {"type": CONDITION, "status": "True" if ok else "False", "reason": reason,
            "message": message[:1024], "lastTransitionTime": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}


def api_condition_writer(api: DynamicApi) -> Callable[[str, str, JSON], None]:
    """Writes a pod condition with the daemon's API client (strategic merge on
    ``status.conditions``, keyed by type: other conditions are kept)."""
    from metacni.meta import kube_paths

    def write(namespace: str, name: str, cond: JSON) -> None:
        api.patch(api.resource("v1", "Pod", "status"), name, namespace, {"status": {"conditions": [cond]}},
                  kube_paths.STRATEGIC_MERGE_PATCH, _request_timeout=10)

    return write


def _annotations(pod: JSON) -> dict[str, str]:
    return {str(k): str(v) for k, v in ((pod.get("metadata") or {}).get("annotations") or {}).items()}


class HotplugWatcher:
    def __init__(self, get_pod: Callable[[str, str], JSON | None], node_config: Callable[[], JSON | None],
                 invoker: Invoker, hold: Hold, cni_path: tuple[str, ...] = (),
                 write_condition: Callable[[str, str, JSON], None] | None = None) -> None:
        self._write_condition = write_condition
        self._get_pod = get_pod
        self._cni_path = cni_path
        self._node_config = node_config
        self._invoker = invoker
        self._hold = hold
        self._seen: dict[tuple[str, str], tuple[str, str]] = {}  # pod -> (uid, annotation value)
        self._failed: dict[str, str] = {}  # container -> annotation value whose pass failed
        self._queue: list[tuple[str, str]] = []
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self.passes = 0  # finished passes (observability, tests)
        self._thread = threading.Thread(target=self._run, name="hotplug", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        if self._thread.is_alive():
            self._thread.join(10)

    def observe(self, pod: JSON) -> None:
        """Informer callback (ADDED/MODIFIED): queue the pod when its annotation changed."""
        meta = pod.get("metadata") or {}
        key = (str(meta.get("namespace") or ""), str(meta.get("name") or ""))
        seen = (str(meta.get("uid") or ""), _annotations(pod).get(NETWORKS, ""))
        with self._cond:
            if self._seen.get(key) == seen:
                return
            self._seen[key] = seen
            if key not in self._queue:
                self._queue.append(key)
            self._cond.notify_all()

    def forget(self, namespace: str, name: str) -> None:
        with self._cond:
            self._seen.pop((namespace, name), None)

    def _run(self) -> None:
        while not self._stop.is_set():
            with self._cond:
                self._cond.wait_for(lambda: self._queue or self._stop.is_set())
                if self._stop.is_set():
                    return
                key = self._queue.pop(0)
            try:
                self.process(*key)
            except Exception:
                log.exception("dynamic networks of pod %s/%s failed", *key)
            with self._cond:
                self.passes += 1
                self._cond.notify_all()

    def process(self, namespace: str, name: str) -> None:
        """One pass over one pod, from its latest cached state."""
        pod = self._get_pod(namespace, name)
        if pod is None or (pod.get("metadata") or {}).get("deletionTimestamp"):
            return
        annotations = _annotations(pod)
        if hotplug.opted_out(annotations):
            return
        conf = self._node_config()
        if conf is None:
            log.warning("dynamic networks: no node metacni config; pod %s/%s left as it is", namespace, name)
            return
        cid = hotplug.find_container(hotplug.cni_dir(conf), namespace, name)
        if cid is None:
            return
        value = annotations.get(NETWORKS, "")
        uid = str((pod.get("metadata") or {}).get("uid") or "")
        if self._failed.get(cid) == value:
            return
        with self._hold(cid):
            latest = self._get_pod(namespace, name)  # the runtime may have deleted it meanwhile
            if latest is None or (latest.get("metadata") or {}).get("deletionTimestamp"):
                return
            try:
                outcome = hotplug.reconcile(conf, cid, _annotations(latest), pod_uid=uid, invoker=self._invoker,
                                            cni_path=self._cni_path)
            except CNIError as exc:
                self._failed[cid] = value
                log.warning("dynamic networks of pod %s/%s failed: %s", namespace, name, exc)
                hotplug.report_failure(conf, namespace, name, uid, exc)
                self._condition(namespace, name, condition(False, "AttachFailed", f"{exc.msg}: {exc.details}"))
                return
            was_failed = self._failed.pop(cid, None) is not None
            if outcome.changed or was_failed:
                done = f"attached {outcome.attached or 'nothing'}, detached {outcome.detached or 'nothing'}"
                self._condition(namespace, name, condition(True, "Applied", done))

    def _condition(self, namespace: str, name: str, cond: JSON) -> None:
        if self._write_condition is None:
            return
        try:
            self._write_condition(namespace, name, cond)
        except Exception as exc:  # a report, not the work: the interfaces are already right
            log.warning("cannot write condition %s of pod %s/%s: %s", CONDITION, namespace, name, exc)


# ------------------------------------------------------------------------------ POST /delegate
def _error(status: int, exc: CNIError) -> Reply:
    return Reply(status, exc.to_json().encode() + b"\n")


def delegate_reply(body: bytes, node_config: Callable[[], JSON | None], invoker: Invoker, hold: Hold,
                   cni_path: tuple[str, ...] = ()) -> Reply:
    """Multus' ``/delegate`` request (``{"env": {...}, "config": <base64 of the network's CNI
    config>, "interfaceAttributes": {...}}``): ADD answers 200 ``{"Result": <CNI 1.0 result>}``,
    DEL answers 200 with an empty body, a failure 400 (500 internal) with a CNI error document.
    No ``Metacni-Protocol`` header is needed (the dynamic networks controller sends only
    ``Content-Type``). Of ``CNI_ARGS`` only ``K8S_POD_UID`` is used and of ``env`` not
    ``CNI_NETNS``: the pod and its netns are the container's delegate record's."""
    try:
        doc = safejson.loads(body)  # nesting bounded: a 500 from RecursionError before
        env = {str(k): str(v) for k, v in dict(doc.get("env") or {}).items()}
        config = binascii.a2b_base64(str(doc.get("config") or ""))
        attrs = doc.get("interfaceAttributes") or {}
        if not isinstance(attrs, dict):
            raise ValueError("interfaceAttributes is not an object")
    except (ValueError, TypeError, AttributeError, binascii.Error) as exc:
        return _error(400, CNIError(Code.DECODE_FAILURE, "invalid /delegate request", str(exc)))
    command, cid, ifname = env.get("CNI_COMMAND", ""), env.get("CNI_CONTAINERID", ""), env.get("CNI_IFNAME", "")
    conf = node_config()
    if conf is None:
        return _error(503, CNIError(Code.TRY_AGAIN_LATER, "no node metacni config", "the daemon has no node config"))
    if not cid or not ifname or command not in ("ADD", "DEL"):
        hint = ("; the dynamic networks controller sends the selection's \"interface\", which it "
                "requires in every element of the pod's networks annotation") if cid and not ifname else ""
        return _error(400, CNIError(Code.INVALID_ENVIRONMENT, "invalid /delegate request",
                                    "env needs CNI_COMMAND (ADD or DEL), CNI_CONTAINERID and CNI_IFNAME" + hint))
    try:
        uid = CniArgs.parse(env.get("CNI_ARGS", "")).get("K8S_POD_UID", "")
    except CNIError as exc:
        return _error(400, exc)
    try:
        with hold(cid):
            if command == "ADD":
                result = hotplug.delegate_add(conf, cid, ifname, config, attrs, pod_uid=uid, invoker=invoker,
                                              cni_path=cni_path)
                return Reply(200, json.dumps({"Result": result.convert("1.0.0").to_wire()}).encode())
            hotplug.delegate_del(conf, cid, ifname, pod_uid=uid, invoker=invoker, cni_path=cni_path)
            return Reply(200, b"")
    except CNIError as exc:
        return _error(500 if exc.code == Code.INTERNAL else 400, exc)


