"""Names of the API objects metacni reads and writes, and the patch type (no client code here)."""

from __future__ import annotations

NAD_GROUP, NAD_VERSION, NAD_PLURAL = "k8s.cni.cncf.io", "v1", "network-attachment-definitions"
NAD_API_VERSION, NAD_KIND = f"{NAD_GROUP}/{NAD_VERSION}", "NetworkAttachmentDefinition"
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"

