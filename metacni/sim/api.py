"""A small REST client for the run's fake API server (a separate process in the underlay
namespace, so a kept demo survives the command that built it). Requests are made from a thread
entered into the underlay namespace: the host's namespace has no route to the cluster."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

from metacni.sim.fakeapi import DEFAULT_TOKEN, NAD_GROUP, NAD_PLURAL, NAD_VERSION
from metacni.sim.traffic import in_netns

from .host import SimError, netns_path

JSON = dict[str, Any]


class Api:
    def __init__(self, url: str, netns: str, token: str = DEFAULT_TOKEN) -> None:
        self.url = url.rstrip("/")
        self.netns = netns
        self.token = token

    def request(self, method: str, path: str, body: JSON | None = None, *, ok404: bool = False,
                content_type: str = "application/json", timeout: float = 10.0) -> JSON | None:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.url + path, data=data, method=method, headers={
            "Authorization": f"Bearer {self.token}", "Content-Type": content_type, "Accept": "application/json"})

        def call() -> JSON | None:
            try:
                with urllib.request.urlopen(req, timeout=timeout) as resp:
                    return dict(json.loads(resp.read() or b"{}"))
            except urllib.error.HTTPError as exc:
                if ok404 and exc.code == 404:
                    return None
                raise SimError(f"API {method} {path}: {exc.code} {exc.read()[:300]!r}") from None

        return in_netns(netns_path(self.netns), call)

    # -- objects the simulation needs ------------------------------------------------------
    def create_pod(self, namespace: str, name: str, node: str, annotations: dict[str, str] | None = None) -> JSON:
        meta: JSON = {"name": name, "namespace": namespace}
        if annotations:
            meta["annotations"] = annotations
        body = {"apiVersion": "v1", "kind": "Pod", "metadata": meta,
                "spec": {"nodeName": node, "containers": [{"name": "app", "image": "registry.k8s.io/pause:3.9"}]},
                "status": {"phase": "Pending"}}
        out = self.request("POST", f"/api/v1/namespaces/{namespace}/pods", body)
        assert out is not None
        return out

    def get_pod(self, namespace: str, name: str) -> JSON | None:
        return self.request("GET", f"/api/v1/namespaces/{namespace}/pods/{name}", ok404=True)

    def delete_pod(self, namespace: str, name: str) -> None:
        self.request("DELETE", f"/api/v1/namespaces/{namespace}/pods/{name}", ok404=True)

    def create_nad(self, namespace: str, name: str, config: JSON) -> None:
        body = {"apiVersion": f"{NAD_GROUP}/{NAD_VERSION}", "kind": "NetworkAttachmentDefinition",
                "metadata": {"name": name, "namespace": namespace}, "spec": {"config": json.dumps(config)}}
        self.request("POST", f"/apis/{NAD_GROUP}/{NAD_VERSION}/namespaces/{namespace}/{NAD_PLURAL}", body)
