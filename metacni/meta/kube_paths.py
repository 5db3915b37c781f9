"""Names and paths of the API objects metacni reads and writes (no client code here)."""

from __future__ import annotations

NAD_GROUP, NAD_VERSION, NAD_PLURAL = "k8s.cni.cncf.io", "v1", "network-attachment-definitions"
PODS = "/api/v1/pods"
NODES = "/api/v1/nodes"
NADS = f"/apis/{NAD_GROUP}/{NAD_VERSION}/{NAD_PLURAL}"
MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"


def pod_path(namespace: str, name: str) -> str:
    return f"/api/v1/namespaces/{namespace}/pods/{name}"


def pod_status_path(namespace: str, name: str) -> str:
    """The pod's status subresource: where network-status is written (RBAC grants ``patch`` on
    ``pods/status`` only, never on ``pods``; the apiserver's pod status strategy keeps
    annotation changes made through it)."""
    return f"{pod_path(namespace, name)}/status"


def nad_path(namespace: str, name: str) -> str:
    return f"/apis/{NAD_GROUP}/{NAD_VERSION}/namespaces/{namespace}/{NAD_PLURAL}/{name}"
