"""REST calls by path through the ``kubernetes`` client's ``ApiClient``.

The generated API classes are the expensive part of the client: touching ``CoreV1Api`` imports
its 30 000-line module and the models it names, +21 MiB of RSS in the daemon (measured: 46 MiB
with ``ApiClient`` alone, 67 MiB once ``CoreV1Api`` is touched), which alone would break the
daemon's 80 MiB budget. metacni only needs raw JSON from a handful of endpoints, so it calls
``ApiClient.call_api`` with the path: same configuration, authentication, TLS and connection pool
as the generated classes, none of their weight.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from typing import Any

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


def call(api: Any, method: str, path: str, *, query: Iterable[tuple[str, Any]] = (), body: Any = None,
         content_type: str | None = None, timeout: Any = None) -> Any:
    """One request; returns the unread urllib3 response (``.data``, ``.status``, streaming for watches).
    Raises the client's ``ApiException`` for non-2xx answers, as the generated classes do with
    ``_preload_content=False`` (this is the code path they take)."""
    headers = {"Accept": "application/json"}
    if content_type:
        headers["Content-Type"] = content_type
    request = api.param_serialize(method, path, query_params=[(k, v) for k, v in query if v is not None],
                                  header_params=headers, body=body, auth_settings=["BearerToken"])
    resp = api.call_api(*request, _request_timeout=timeout)
    if not 200 <= resp.status <= 299:
        from kubernetes.client.exceptions import ApiException

        resp.read()
        raise ApiException.from_response(http_resp=resp, body=None, data=None)
    return resp.response


def call_json(api: Any, method: str, path: str, **kwargs: Any) -> Any:
    """One request with a JSON answer, read whole; the connection goes back to the pool (an
    unread streaming response would keep it, and the next request would open a new one)."""
    resp = call(api, method, path, **kwargs)
    try:
        return json.loads(resp.data) if resp.data else None
    finally:
        resp.release_conn()
