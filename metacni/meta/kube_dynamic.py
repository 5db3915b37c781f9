"""The ``kubernetes`` dynamic client as metacni uses it: raw JSON in and out, discovery cached in
metacni's own state.

:class:`DynamicApi` wraps one ``kubernetes.dynamic.DynamicClient``. Resources are found by
discovery (``/version``, ``/apis``, then ``/api/v1`` or ``/apis/<group>/<version>`` on first use)
and the answers are kept in a cache file under a directory metacni owns, never the library's
default in the shared temp dir. Requests pass ``serialize=False`` and the JSON is parsed here, so
no ``ResourceInstance`` wraps fields nobody reads; watches stream raw dicts. The generated
``CoreV1Api`` is never imported (why: docs/design/1603-kube-dynamic-client.md).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
from collections.abc import Iterator
from typing import Any

from kubernetes.dynamic import DynamicClient, LazyDiscoverer
from kubernetes.dynamic.discovery import CacheEncoder

from metacni.engine.cache import atomic_write

log = logging.getLogger(__name__)
JSON = dict[str, Any]

# The library reads its cache file only if it exists, and _AtomicDiscoverer never writes this one:
# a client without a cache directory keeps discovery in memory.
_NO_FILE = os.path.join(os.devnull, "metacni-discovery")


def discovery_cache_file(directory: str, host: str) -> str:
    """The cache file for the API server at ``host`` in ``directory`` ("" → memory only)."""
    if not directory:
        return _NO_FILE
    return os.path.join(directory, hashlib.sha256(host.encode()).hexdigest()[:16] + ".json")


class _AtomicDiscoverer(LazyDiscoverer):
    """``LazyDiscoverer`` whose cache file is replaced atomically (temp file, rename): standalone
    calls running at once read the old or the new file, never half of one, where the library
    truncates and rewrites it in place."""

    def __init__(self, client: Any, cache_file: str) -> None:
        self._metacni_cache_file = cache_file  # set first: the base __init__ may already write
        super().__init__(client, cache_file)

    def _write_cache(self) -> None:
        path = self._metacni_cache_file
        if path == _NO_FILE:
            return
        try:
            atomic_write(path, json.dumps(self._cache, cls=CacheEncoder).encode(), mode=0o600, durable=False)
        except OSError as exc:  # a cache: the next client discovers again
            log.warning("cannot write the API discovery cache %s: %s", path, exc)


class DynamicApi:
    """One ``DynamicClient`` over one ``kubernetes.client.ApiClient``. Thread-safe.

    The client (and discovery) is created on the first request, inside the caller's error
    handling: a 401 there is the caller's to retry. Every method raises the client's
    ``ApiException`` (the dynamic client's subclasses) for an HTTP error and
    ``ResourceNotFoundError`` when discovery does not know the kind.
    """

    def __init__(self, api_client: Any, cache_dir: str = "") -> None:
        self.api_client = api_client
        self.cache_file = discovery_cache_file(cache_dir, api_client.configuration.host)
        self._lock = threading.Lock()
        self._dyn: DynamicClient | None = None
        self._resources: dict[tuple[str, str, str], Any] = {}

    def resource(self, api_version: str, kind: str, subresource: str = "") -> Any:
        """The discovered ``Resource`` (or its ``Subresource``) of a kind; core kinds
        (``api_version`` without a group) are looked up under ``/api`` only, so no other group's
        resources are fetched."""
        key = (api_version, kind, subresource)
        with self._lock:  # LazyDiscoverer is not thread-safe
            found = self._resources.get(key)
            if found is None:
                if self._dyn is None:
                    self._dyn = DynamicClient(self.api_client, cache_file=self.cache_file,
                                              discoverer=_AtomicDiscoverer)
                prefix = {} if "/" in api_version else {"prefix": "api"}
                found = self._dyn.resources.get(api_version=api_version, kind=kind, **prefix)
                if subresource:
                    found = found.subresources[subresource]
                self._resources[key] = found
            return found

    def _dynamic(self) -> DynamicClient:
        with self._lock:
            assert self._dyn is not None, "resource() creates the client"
            return self._dyn

    def get(self, resource: Any, name: str | None = None, namespace: str | None = None,
            **params: Any) -> JSON:
        """GET one object (``name``) or a list, as the API's JSON."""
        return _json_body(self._dynamic().get(resource, name=name, namespace=namespace, serialize=False, **params))

    def patch(self, resource: Any, name: str, namespace: str | None, body: JSON, content_type: str,
              **params: Any) -> JSON:
        return _json_body(self._dynamic().patch(resource, body=body, name=name, namespace=namespace,
                                                content_type=content_type, serialize=False, **params))

    def create(self, resource: Any, namespace: str | None, body: JSON, **params: Any) -> JSON:
        return _json_body(self._dynamic().create(resource, body=body, namespace=namespace, serialize=False,
                                                 **params))

    def watch(self, watcher: Any, resource: Any, **params: Any) -> Iterator[JSON]:
        """The events of a watch as ``{"type": ..., "object": <raw dict>}``, as
        ``DynamicClient.watch`` streams them but without wrapping each object."""
        for event in watcher.stream(resource.get, serialize=False, **params):
            yield {"type": event.get("type"), "object": event.get("raw_object", event.get("object"))}

    def close(self) -> None:
        self.api_client.close()


def _json_body(resp: Any) -> JSON:
    """The JSON object of a raw (``serialize=False``) response; the connection goes back to the pool."""
    try:
        data = json.loads(resp.data)
    finally:
        resp.release_conn()
    if not isinstance(data, dict):
        raise ValueError(f"expected a JSON object, got {type(data).__name__}")
    return data


__all__ = ["DynamicApi", "discovery_cache_file"]
