"""The object store: objects, a global resourceVersion counter, an event log and live watchers.

Like etcd, every write takes the next resourceVersion and records exactly one event, so a watch can
resume from any resourceVersion still in the bounded log and gets 410 Expired for older ones.
Stored objects are never mutated after insertion (every write stores a fresh copy), which lets the
event log and the store share them without copying on every read.
"""

from __future__ import annotations

import copy
import queue
import secrets
import threading
import uuid
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from . import errors
from .patch import apply_patch
from .resources import JSON, ResourceType
from .selectors import Predicate

ADDED, MODIFIED, DELETED = "ADDED", "MODIFIED", "DELETED"
# Pseudo-subresource for test helpers: write spec and status at once, which no HTTP client can.
ANY_PART = "*"
_SYSTEM_META = ("uid", "creationTimestamp", "name", "namespace", "generateName")


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _meta(obj: JSON) -> JSON:
    meta = obj.get("metadata")
    if meta is None:
        meta = obj["metadata"] = {}
    if not isinstance(meta, dict):
        raise errors.bad_request("metadata must be an object")
    return meta


def _without_rv(obj: JSON) -> JSON:
    stripped = dict(obj)
    stripped["metadata"] = {k: v for k, v in (obj.get("metadata") or {}).items() if k != "resourceVersion"}
    return stripped


def _check_string_map(rt: ResourceType, name: str, meta: JSON, key: str) -> None:
    """Labels and annotations are map[string]string in Go; anything else fails to decode there."""
    value = meta.get(key)
    if value is None:
        return
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise errors.bad_request(
            f"{rt.kind} in version \"{rt.version}\" cannot be handled as a {rt.kind}: "
            f"json: cannot unmarshal non-string into Go struct field ObjectMeta.metadata.{key} of type string"
            f" (object {name!r})")


def _validate(rt: ResourceType, obj: JSON) -> None:
    meta = obj["metadata"]
    name = meta.get("name", "")
    _check_string_map(rt, name, meta, "labels")
    _check_string_map(rt, name, meta, "annotations")
    if rt.kind == "NetworkAttachmentDefinition":
        config = (obj.get("spec") or {}).get("config")
        if config is not None and not isinstance(config, str):
            raise errors.invalid(rt, name, "spec.config: Invalid value: must be of type string")


@dataclass(frozen=True)
class Event:
    """One write: the object after it (for DELETED: the last state) and, for MODIFIED, before it."""

    rv: int
    plural: str
    type: str
    obj: JSON
    old: JSON | None = None


@dataclass(eq=False)
class Watcher:
    """A live watch: receives every event of its resource; ``translate`` applies its filters."""

    rt: ResourceType
    matches: Predicate
    events: queue.SimpleQueue[Event | None] = field(default_factory=queue.SimpleQueue)

    def translate(self, event: Event) -> tuple[str, JSON] | None:
        """What this watcher sees of an event, with the apiserver's rule for objects that move
        in or out of the selection: entering is ADDED, leaving is DELETED (with the old object)."""
        now = self.matches(event.obj)
        if event.type != MODIFIED or event.old is None:
            return (event.type, event.obj) if now else None
        before = self.matches(event.old)
        if now and before:
            return MODIFIED, event.obj
        if now:
            return ADDED, event.obj
        if before:
            old = copy.deepcopy(event.old)
            old["metadata"]["resourceVersion"] = str(event.rv)
            return DELETED, old
        return None


class Store:
    """Thread-safe storage for every resource type, with etcd-like versioning and watch fan-out."""

    def __init__(self, event_history: int = 1000, first_rv: int = 1000) -> None:
        self.lock = threading.RLock()
        self._objects: dict[str, dict[tuple[str, str], JSON]] = {}
        self._rv = first_rv
        self._log: deque[Event] = deque(maxlen=max(1, event_history))
        self._compacted_rv = first_rv
        self._watchers: set[Watcher] = set()

    # -- versioning and events -------------------------------------------------------------

    @property
    def resource_version(self) -> int:
        with self.lock:
            return self._rv

    def _next_rv(self) -> int:
        self._rv += 1
        return self._rv

    def _publish(self, event: Event) -> None:
        if len(self._log) == self._log.maxlen:
            self._compacted_rv = self._log[0].rv
        self._log.append(event)
        for watcher in self._watchers:
            if watcher.rt.plural == event.plural:
                watcher.events.put(event)

    def compact(self) -> int:
        """Forget the whole event log, as etcd compaction does; older watch RVs then get 410."""
        with self.lock:
            self._log.clear()
            self._compacted_rv = self._rv
            return self._rv

    # -- reads -----------------------------------------------------------------------------

    def _table(self, rt: ResourceType) -> dict[tuple[str, str], JSON]:
        return self._objects.setdefault(rt.plural, {})

    @staticmethod
    def _key(rt: ResourceType, namespace: str | None, name: str) -> tuple[str, str]:
        return (namespace or "") if rt.namespaced else "", name

    def _existing(self, rt: ResourceType, namespace: str | None, name: str) -> JSON:
        obj = self._table(rt).get(self._key(rt, namespace, name))
        if obj is None:
            raise errors.not_found(rt, name)
        return obj

    def get(self, rt: ResourceType, namespace: str | None, name: str) -> JSON:
        """The stored object (shared: callers must copy before mutating)."""
        with self.lock:
            return self._existing(rt, namespace, name)

    def select(self, rt: ResourceType, matches: Predicate) -> tuple[list[JSON], int]:
        """Matching objects sorted by namespace/name, and the resourceVersion they are consistent at."""
        with self.lock:
            items = [obj for _, obj in sorted(self._table(rt).items()) if matches(obj)]
            return items, self._rv

    # -- writes ----------------------------------------------------------------------------

    def create(self, rt: ResourceType, namespace: str | None, body: JSON, *, trusted: bool = False) -> JSON:
        """Create as the apiserver does; ``trusted`` (test helpers) keeps a given uid and status."""
        obj = copy.deepcopy(body)
        if rt.reset_status_on_create and not trusted:
            obj.pop("status", None)
        meta = _meta(obj)
        self._check_kind(rt, obj)
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = meta["generateName"] + secrets.token_hex(3)[:5]
        name = meta.get("name")
        if not name:
            raise errors.invalid(rt, "", "metadata.name: Required value: name or generateName is required")
        self._set_namespace(rt, namespace, meta)
        for key, value in rt.defaults.items():
            obj.setdefault(key, copy.deepcopy(value))
        _validate(rt, obj)
        with self.lock:
            table = self._table(rt)
            slot = self._key(rt, meta.get("namespace"), name)
            if slot in table:
                raise errors.already_exists(rt, name)
            if not (trusted and meta.get("uid")):
                meta["uid"] = str(uuid.uuid4())
            meta["creationTimestamp"] = _now()
            for transient in ("deletionTimestamp", "deletionGracePeriodSeconds", "managedFields"):
                meta.pop(transient, None)
            rv = self._next_rv()
            meta["resourceVersion"] = str(rv)
            table[slot] = obj
            self._publish(Event(rv, rt.plural, ADDED, obj))
            return obj

    def update(self, rt: ResourceType, namespace: str | None, name: str, body: JSON,
               subresource: str | None = None) -> JSON:
        """PUT semantics: optimistic concurrency on metadata.resourceVersion when it is set."""
        body = copy.deepcopy(body)
        body_meta = _meta(body)
        if body_meta.get("name") and body_meta["name"] != name:
            raise errors.bad_request(
                f"the name of the object ({body_meta['name']}) does not match the name on the URL ({name})")
        if rt.namespaced and body_meta.get("namespace") and body_meta["namespace"] != namespace:
            raise errors.bad_request("the namespace of the provided object does not match the namespace "
                                     "sent on the request")
        self._check_kind(rt, body)
        with self.lock:
            old = self._existing(rt, namespace, name)
            self._check_preconditions(rt, old, {"uid": body_meta.get("uid")})  # PUT: the body's UID, 409
            wanted = body_meta.get("resourceVersion")
            if wanted and wanted != old["metadata"]["resourceVersion"]:
                raise errors.conflict(rt, name)
            return self._commit(rt, old, body, subresource)

    def patch(self, rt: ResourceType, namespace: str | None, name: str, content_type: str, patch: Any,
              subresource: str | None = None) -> JSON:
        """PATCH semantics: a resourceVersion in the patched result acts as a precondition."""
        with self.lock:
            old = self._existing(rt, namespace, name)
            patched = apply_patch(content_type, copy.deepcopy(old), patch)
            if not isinstance(patched, dict):
                raise errors.bad_request("the patched object is not a JSON object")
            wanted = _meta(patched).get("resourceVersion")
            if wanted and wanted != old["metadata"]["resourceVersion"]:
                raise errors.conflict(rt, name)
            return self._commit(rt, old, patched, subresource)

    def delete(self, rt: ResourceType, namespace: str | None, name: str,
               preconditions: JSON | None = None) -> JSON:
        """Immediate deletion (no grace period, no finalizers); returns the object's last state."""
        with self.lock:
            old = self._existing(rt, namespace, name)
            self._check_preconditions(rt, old, preconditions or {})
            gone = copy.deepcopy(old)
            rv = self._next_rv()
            gone["metadata"]["resourceVersion"] = str(rv)
            del self._table(rt)[self._key(rt, namespace, name)]
            self._publish(Event(rv, rt.plural, DELETED, gone))
            return gone

    def delete_many(self, rt: ResourceType, matches: Predicate) -> list[JSON]:
        with self.lock:
            victims = [obj for obj in self._table(rt).values() if matches(obj)]
            return [self.delete(rt, v["metadata"].get("namespace"), v["metadata"]["name"]) for v in victims]

    def bind(self, rt: ResourceType, namespace: str, name: str, node: str) -> None:
        """pods/binding: set spec.nodeName once, as the scheduler does."""
        with self.lock:
            old = self._existing(rt, namespace, name)
            if (old.get("spec") or {}).get("nodeName"):
                raise errors.conflict(rt, name, f"pod {name} is already assigned to node "
                                                f"\"{old['spec']['nodeName']}\"")
            new = copy.deepcopy(old)
            new.setdefault("spec", {})["nodeName"] = node
            self._commit(rt, old, new, None)

    # -- helpers ---------------------------------------------------------------------------

    @staticmethod
    def _check_kind(rt: ResourceType, obj: JSON) -> None:
        kind, api_version = obj.get("kind"), obj.get("apiVersion")
        if kind not in (None, "", rt.kind) or api_version not in (None, "", rt.api_version):
            raise errors.bad_request(f"expected {rt.api_version}, Kind={rt.kind}, got "
                                     f"{obj.get('apiVersion')}, Kind={obj.get('kind')}")
        obj["kind"], obj["apiVersion"] = rt.kind, rt.api_version

    @staticmethod
    def _set_namespace(rt: ResourceType, namespace: str | None, meta: JSON) -> None:
        if not rt.namespaced:
            meta.pop("namespace", None)
            return
        if meta.get("namespace") and namespace and meta["namespace"] != namespace:
            raise errors.bad_request("the namespace of the provided object does not match the namespace "
                                     "sent on the request")
        meta["namespace"] = namespace or meta.get("namespace") or "default"

    @staticmethod
    def _check_preconditions(rt: ResourceType, obj: JSON, pre: JSON) -> None:
        meta = obj["metadata"]
        name = meta["name"]
        if pre.get("uid") and pre["uid"] != meta.get("uid"):
            raise errors.conflict(rt, name, f"Precondition failed: UID in precondition: {pre['uid']}, "
                                            f"UID in object meta: {meta.get('uid')}")
        if pre.get("resourceVersion") and pre["resourceVersion"] != meta.get("resourceVersion"):
            raise errors.conflict(rt, name, f"Precondition failed: ResourceVersion in precondition: "
                                            f"{pre['resourceVersion']}, ResourceVersion in object meta: "
                                            f"{meta.get('resourceVersion')}")

    def _commit(self, rt: ResourceType, old: JSON, body: JSON, subresource: str | None) -> JSON:
        """Store ``body`` as the new state of ``old``, keeping what clients cannot change.

        Status is only writable through the status subresource and everything else only through
        the main resource, as for the real pods and nodes. A UID other than the object's is
        refused (422), which makes a UID in a patch a precondition, as kubelet uses it. A write
        that changes nothing keeps the old resourceVersion and emits no event, as the apiserver
        does.
        """
        sent_uid = _meta(body).get("uid")
        if sent_uid and sent_uid != old["metadata"].get("uid"):  # the apiserver's immutable-field check
            raise errors.invalid(rt, old["metadata"]["name"], f'metadata.uid: Invalid value: "{sent_uid}": '
                                                              "field is immutable")
        new = copy.deepcopy(body)
        if subresource == ANY_PART:
            pass
        elif subresource == "status":
            status = new.get("status")
            meta_new = _meta(new)
            new = copy.deepcopy(old)
            new.pop("status", None)
            if status is not None:
                new["status"] = status
            if rt.plural == "pods":  # the pod status strategy keeps label and annotation changes
                for key in ("labels", "annotations"):
                    new["metadata"].pop(key, None)
                    if meta_new.get(key) is not None:
                        new["metadata"][key] = meta_new[key]
        elif rt.has_status:
            new.pop("status", None)
            if "status" in old:
                new["status"] = copy.deepcopy(old["status"])
        meta = _meta(new)
        for key in _SYSTEM_META:
            meta.pop(key, None)
            if key in old["metadata"]:
                meta[key] = old["metadata"][key]
        new["kind"], new["apiVersion"] = rt.kind, rt.api_version
        meta["resourceVersion"] = old["metadata"]["resourceVersion"]
        _validate(rt, new)
        if new == old:
            return old
        rv = self._next_rv()
        meta["resourceVersion"] = str(rv)
        self._table(rt)[self._key(rt, meta.get("namespace"), meta["name"])] = new
        self._publish(Event(rv, rt.plural, MODIFIED, new, old))
        return new

    # -- watch -----------------------------------------------------------------------------

    def watch(self, rt: ResourceType, matches: Predicate, since: int | None) -> tuple[Watcher, int, int]:
        """Register a watcher and queue what it must see first.

        Returns the watcher, the RV it starts at and how many queued events are backlog.
        ``since=None`` means "current state": synthetic ADDED events for every matching object.
        Otherwise the log replays events after ``since``; 410 Expired if they were compacted away.
        Registration and replay happen under the lock, so no event can fall between them.
        """
        with self.lock:
            if since is not None and since < self._compacted_rv:
                raise errors.expired(since, self._compacted_rv + 1)
            watcher = Watcher(rt, matches)
            backlog: list[Event]
            if since is None:
                backlog = [Event(int(obj["metadata"]["resourceVersion"]), rt.plural, ADDED, obj)
                           for _, obj in sorted(self._table(rt).items())]
            else:
                backlog = [e for e in self._log if e.rv > since and e.plural == rt.plural]
            for event in backlog:
                watcher.events.put(event)
            self._watchers.add(watcher)
            return watcher, self._rv, len(backlog)

    def unwatch(self, watcher: Watcher) -> None:
        with self.lock:
            self._watchers.discard(watcher)

    def bookmark_rv(self, watcher: Watcher) -> int | None:
        """The RV a bookmark may announce: only when the watcher has nothing pending."""
        with self.lock:
            return self._rv if watcher.events.empty() else None

    def close_watchers(self) -> None:
        """Wake every watcher with the end-of-stream sentinel (server shutdown)."""
        with self.lock:
            for watcher in self._watchers:
                watcher.events.put(None)
