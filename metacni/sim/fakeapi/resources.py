"""The resource types the fake API server knows, described the way discovery describes them.

One table drives routing, discovery documents, kinds and field-selector validation, so adding a
resource is one entry here rather than new handler code.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

JSON = dict[str, Any]

NAD_GROUP = "k8s.cni.cncf.io"
NAD_VERSION = "v1"

_COMMON_VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")


@dataclass(frozen=True)
class ResourceType:
    """A REST resource: where it lives (group/version/plural), its kind and its rules."""

    plural: str
    singular: str
    kind: str
    namespaced: bool
    group: str = ""
    version: str = "v1"
    short_names: tuple[str, ...] = ()
    subresources: frozenset[str] = frozenset()
    # Field labels the real apiserver accepts in fieldSelector; anything else is a 400 there too.
    field_labels: frozenset[str] = frozenset({"metadata.name", "metadata.namespace"})
    # Built-in lists drop apiVersion/kind from their items; custom resource lists keep them.
    typed_list_items: bool = False
    verbs: tuple[str, ...] = _COMMON_VERBS
    # Top-level fields filled in when a create leaves them out.
    defaults: JSON = field(default_factory=dict)
    # The pod strategy discards client-supplied status on create; only the kubelet sets it later.
    reset_status_on_create: bool = False

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def list_kind(self) -> str:
        return self.kind + "List"

    @property
    def has_status(self) -> bool:
        return "status" in self.subresources

    @property
    def qualified(self) -> str:
        """``pods`` for core resources, ``plural.group`` otherwise, as error messages spell it."""
        return f"{self.plural}.{self.group}" if self.group else self.plural


PODS = ResourceType(
    plural="pods", singular="pod", kind="Pod", namespaced=True, short_names=("po",),
    subresources=frozenset({"status", "binding"}),
    field_labels=frozenset({
        "metadata.name", "metadata.namespace", "spec.nodeName", "spec.restartPolicy",
        "spec.schedulerName", "spec.serviceAccountName", "spec.hostNetwork", "status.phase",
        "status.podIP", "status.nominatedNodeName",
    }),
    defaults={"status": {"phase": "Pending"}},
    reset_status_on_create=True,
)
NODES = ResourceType(
    plural="nodes", singular="node", kind="Node", namespaced=False, short_names=("no",),
    subresources=frozenset({"status"}),
    field_labels=frozenset({"metadata.name", "spec.unschedulable"}),
)
NAMESPACES = ResourceType(
    plural="namespaces", singular="namespace", kind="Namespace", namespaced=False, short_names=("ns",),
    subresources=frozenset({"status"}),
    field_labels=frozenset({"metadata.name", "status.phase"}),
    defaults={"status": {"phase": "Active"}},
)
NADS = ResourceType(
    plural="network-attachment-definitions", singular="network-attachment-definition",
    kind="NetworkAttachmentDefinition", namespaced=True, group=NAD_GROUP, version=NAD_VERSION,
    short_names=("net-attach-def",), typed_list_items=True,
)

# core/v1 events, as client-go's recorder (Multus) and metacni.meta.events write them
EVENTS = ResourceType(
    plural="events", singular="event", kind="Event", namespaced=True, short_names=("ev",),
    field_labels=frozenset({
        "metadata.name", "metadata.namespace", "involvedObject.kind", "involvedObject.namespace",
        "involvedObject.name", "involvedObject.uid", "involvedObject.apiVersion",
        "involvedObject.resourceVersion", "involvedObject.fieldPath", "reason", "reportingComponent",
        "source", "type",
    }),
)

ALL: tuple[ResourceType, ...] = (PODS, NODES, NAMESPACES, NADS, EVENTS)
BY_PATH: dict[tuple[str, str, str], ResourceType] = {(r.group, r.version, r.plural): r for r in ALL}
BY_PLURAL: dict[str, ResourceType] = {r.plural: r for r in ALL}


def lookup(plural: str) -> ResourceType:
    """The resource type for a plural name; KeyError names the known ones."""
    try:
        return BY_PLURAL[plural]
    except KeyError:
        raise KeyError(f"unknown resource {plural!r}; known: {sorted(BY_PLURAL)}") from None


def _resource_entry(rt: ResourceType) -> list[JSON]:
    main: JSON = {
        "name": rt.plural, "singularName": rt.singular, "namespaced": rt.namespaced,
        "kind": rt.kind, "verbs": list(rt.verbs),
    }
    if rt.short_names:
        main["shortNames"] = list(rt.short_names)
    entries = [main]
    for sub in sorted(rt.subresources):
        verbs = ["create"] if sub == "binding" else ["get", "patch", "update"]
        kind = "Binding" if sub == "binding" else rt.kind
        entries.append({"name": f"{rt.plural}/{sub}", "singularName": "", "namespaced": rt.namespaced,
                        "kind": kind, "verbs": verbs})
    return entries


def resource_list(group: str, version: str) -> JSON | None:
    """The APIResourceList served at /api/v1 or /apis/<group>/<version>, or None if unknown."""
    types = [r for r in ALL if r.group == group and r.version == version]
    if not types:
        return None
    gv = f"{group}/{version}" if group else version
    resources = [entry for rt in types for entry in _resource_entry(rt)]
    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources}


def _group_doc(group: str) -> JSON:
    versions = sorted({r.version for r in ALL if r.group == group})
    entries = [{"groupVersion": f"{group}/{v}", "version": v} for v in versions]
    return {"name": group, "versions": entries, "preferredVersion": entries[0]}


def api_group(group: str) -> JSON | None:
    """The APIGroup document served at /apis/<group>, or None if the group is unknown."""
    if not group or all(r.group != group for r in ALL):
        return None
    return {"kind": "APIGroup", "apiVersion": "v1", **_group_doc(group)}


def api_group_list() -> JSON:
    groups = sorted({r.group for r in ALL if r.group})
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": [_group_doc(g) for g in groups]}


def api_versions(server_address: str) -> JSON:
    return {
        "kind": "APIVersions", "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}],
    }


VERSION_INFO: JSON = {
    "major": "1", "minor": "31", "gitVersion": "v1.31.0-metacni-fake",
    "gitCommit": "0000000000000000000000000000000000000000", "gitTreeState": "clean",
    "buildDate": "2024-08-13T00:00:00Z", "goVersion": "go1.22.5", "compiler": "gc",
    "platform": "linux/amd64",
}
