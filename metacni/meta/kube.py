"""Kubernetes access for the meta plugin, behind one small interface.

Everything the meta plugin needs from the API goes through :class:`KubeView`, so the node
daemon can install a watch-cache-backed view with :func:`set_view_factory` (its writes and
cache misses go through :class:`ApiKubeView`, the ``kubernetes`` client, via
:func:`default_view`) while a standalone CNI call uses
:class:`metacni.meta.kubehttp.HttpKubeView` (standard library only: the ``kubernetes`` import
alone costs ~500 ms; figures in that module). ``METACNI_KUBE_CLIENT=kubernetes`` makes a
standalone call use the ``kubernetes`` client instead.

Error policy (Multus #492): an API failure is never "no networks". Views raise
``CNIError`` code 11 (try again later) naming the request; only a 404 is an answer (None).
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from logging import getLogger
from typing import TYPE_CHECKING

from metacni.spec.errors import CNIError, Code

from . import kube_paths

if TYPE_CHECKING:
    from typing import Any, Protocol

log = getLogger(__name__)

NAD_GROUP, NAD_VERSION, NAD_PLURAL = kube_paths.NAD_GROUP, kube_paths.NAD_VERSION, kube_paths.NAD_PLURAL
NETWORK_STATUS = "k8s.v1.cni.cncf.io/network-status"

SA_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
DEFAULT_TIMEOUT = 10.0
DEFAULT_CONNECT_TIMEOUT = 5.0
DEFAULT_RETRIES = 2

if TYPE_CHECKING:  # annotations only: nothing checks a view's type at run time
    JSON = dict[str, Any]

    class KubeView(Protocol):
        """What the meta plugin reads from and writes to the API. Objects are raw API JSON dicts.

        ``get_*`` return None only when the object does not exist (404); any other failure
        raises ``CNIError`` (code 11 for transient/API errors). Implementations must be safe to
        call from several threads at once (the daemon serves pods in parallel).
        """

        def get_pod(self, namespace: str, name: str) -> JSON | None: ...

        def get_nad(self, namespace: str, name: str) -> JSON | None: ...

        def patch_pod_network_status(self, namespace: str, name: str, status: list[JSON]) -> None:
            """Set the pod's ``k8s.v1.cni.cncf.io/network-status`` annotation (JSON text of ``status``).

            A pod that no longer exists is not an error (it is being deleted)."""
            ...

    ViewFactory = Callable[[Mapping[str, Any]], KubeView | None]


@dataclass(frozen=True)
class KubeSettings:
    """The API-related keys of the meta config (Multus names plus our timeouts); immutable and
    hashable: views are shared per settings."""

    kubeconfig: str = ""
    timeout: float = DEFAULT_TIMEOUT
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT
    retries: int = DEFAULT_RETRIES

    @classmethod
    def from_conf(cls, conf: Mapping[str, Any]) -> KubeSettings:
        def number(key: str, default: float) -> float:
            value = conf.get(key, default)
            if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
                raise CNIError(Code.INVALID_CONFIG, "invalid metacni configuration",
                               f"{key} must be a positive number of seconds, got {value!r}")
            return float(value)

        retries = conf.get("apiRetries", DEFAULT_RETRIES)
        if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
            raise CNIError(Code.INVALID_CONFIG, "invalid metacni configuration",
                           f"apiRetries must be a non-negative integer, got {retries!r}")
        kubeconfig = conf.get("kubeconfig") or ""
        if not isinstance(kubeconfig, str):
            raise CNIError(Code.INVALID_CONFIG, "invalid metacni configuration",
                           "kubeconfig must be a path string")
        return cls(kubeconfig=kubeconfig, timeout=number("apiTimeout", DEFAULT_TIMEOUT),
                   connect_timeout=number("apiConnectTimeout", DEFAULT_CONNECT_TIMEOUT), retries=retries)

    @property
    def in_cluster(self) -> bool:
        return not self.kubeconfig and bool(os.environ.get("KUBERNETES_SERVICE_HOST")) \
            and bool(os.environ.get("KUBERNETES_SERVICE_PORT"))

    @property
    def configured(self) -> bool:
        """False when there is no kubeconfig and no in-cluster environment: no API at all."""
        return bool(self.kubeconfig) or self.in_cluster


def fingerprint(*paths: str) -> tuple[tuple[int, int, int], ...]:
    out = []
    for path in paths:
        try:
            st = os.stat(path)
            out.append((st.st_ino, st.st_mtime_ns, st.st_size))
        except OSError:
            out.append((0, 0, 0))
    return tuple(out)


class ApiKubeView:
    """A KubeView over the real API with the ``kubernetes`` client.

    Credentials are re-read whenever the kubeconfig file (or the in-cluster token/CA) changes
    and once after a 401, so rotated service-account tokens work (Multus #852). Every request
    carries (connect, read) timeouts from the config (Multus #1461).
    """

    def __init__(self, settings: KubeSettings) -> None:
        self.settings = settings
        self._lock = threading.Lock()
        self._api: Any = None
        self._stamp: tuple[tuple[int, int, int], ...] | None = None

    # ------------------------------------------------------------------ client lifecycle
    def _credential_files(self) -> tuple[str, ...]:
        if self.settings.kubeconfig:
            return (self.settings.kubeconfig,)
        return (os.path.join(SA_DIR, "token"), os.path.join(SA_DIR, "ca.crt"))

    def _client(self, force: bool = False) -> Any:
        stamp = fingerprint(*self._credential_files())
        with self._lock:
            if self._api is not None and not force and stamp == self._stamp:
                return self._api
            from kubernetes import client, config

            cfg = client.Configuration()
            try:
                if self.settings.kubeconfig:
                    config.load_kube_config(config_file=self.settings.kubeconfig, client_configuration=cfg,
                                            persist_config=False)
                else:
                    config.load_incluster_config(client_configuration=cfg)
            except Exception as exc:  # ConfigException, OSError, YAML errors
                where = self.settings.kubeconfig or "in-cluster service account"
                raise CNIError(Code.TRY_AGAIN_LATER, "cannot load Kubernetes credentials",
                               f"{where}: {type(exc).__name__}: {exc}") from None
            cfg.retries = self.settings.retries
            old, self._api = self._api, client.ApiClient(cfg)
            self._stamp = stamp
            if old is not None:
                _close_quietly(old)
            return self._api

    def api_client(self) -> Any:
        """The ``kubernetes.client.ApiClient`` with current credentials, for requests this view
        does not wrap (events, :mod:`metacni.meta.events`)."""
        return self._client()

    def close(self) -> None:
        with self._lock:
            if self._api is not None:
                _close_quietly(self._api)
            self._api = None

    def _call(self, what: str, fn: Callable[[Any], Any]) -> Any:
        """Run ``fn(api_client)``; 404 → None, 401 → reload credentials and retry once."""
        from kubernetes.client.exceptions import ApiException

        for attempt in (0, 1):
            api = self._client(force=attempt == 1)
            try:
                return fn(api)
            except ApiException as exc:
                if exc.status == 404:
                    return None
                if exc.status == 401 and attempt == 0:
                    log.info("%s: 401 Unauthorized, re-reading credentials", what)
                    continue
                raise CNIError(Code.TRY_AGAIN_LATER, "Kubernetes API error",
                               f"{what}: HTTP {exc.status} {exc.reason}: {_status_message(exc)}") from None
            except CNIError:
                raise
            except Exception as exc:  # urllib3 timeouts, refused connections, TLS errors
                raise CNIError(Code.TRY_AGAIN_LATER, "Kubernetes API unreachable",
                               f"{what}: {type(exc).__name__}: {exc}") from None
        raise AssertionError("unreachable")

    @property
    def _timeout(self) -> tuple[float, float]:
        return (self.settings.connect_timeout, self.settings.timeout)

    # ------------------------------------------------------------------ KubeView
    def get_pod(self, namespace: str, name: str) -> JSON | None:
        def read(api: Any) -> JSON:
            return dict(kube_paths.call_json(api, "GET", kube_paths.pod_path(namespace, name), timeout=self._timeout))

        result: JSON | None = self._call(f"GET pod {namespace}/{name}", read)
        return result

    def get_nad(self, namespace: str, name: str) -> JSON | None:
        def read(api: Any) -> JSON:
            return dict(kube_paths.call_json(api, "GET", kube_paths.nad_path(namespace, name), timeout=self._timeout))

        result: JSON | None = self._call(f"GET network-attachment-definition {namespace}/{name}", read)
        return result

    def patch_pod_network_status(self, namespace: str, name: str, status: list[JSON]) -> None:
        body = {"metadata": {"annotations": {NETWORK_STATUS: json.dumps(status)}}}

        def patch(api: Any) -> bool:
            kube_paths.call_json(api, "PATCH", kube_paths.pod_status_path(namespace, name), body=body,
                                 content_type=kube_paths.STRATEGIC_MERGE_PATCH, timeout=self._timeout)
            return True

        if self._call(f"PATCH pod {namespace}/{name}/status network-status", patch) is None:
            log.warning("pod %s/%s is gone; network-status not written", namespace, name)


def _status_message(exc: Any) -> str:
    try:
        return str(json.loads(exc.body).get("message") or exc.body)
    except (TypeError, ValueError, AttributeError):
        return str(getattr(exc, "body", "") or "")


def _close_quietly(api: Any) -> None:
    try:
        api.close()
    except Exception:  # a pool already torn down; nothing to do
        log.debug("closing the API client failed", exc_info=True)


# ---------------------------------------------------------------------- view selection
_factory: ViewFactory | None = None
_views: dict[KubeSettings, ApiKubeView] = {}
_http_views: dict[KubeSettings, KubeView] = {}
_views_lock = threading.Lock()


def set_view_factory(factory: ViewFactory | None) -> None:
    """Install (or with None, remove) the function that builds a view from the meta config.

    The node daemon installs a watch-cache-backed view here; the factory receives the meta
    plugin's stdin config and may return None for "no API configured".
    """
    global _factory
    _factory = factory


def _shared(conf: Mapping[str, Any], views: dict[KubeSettings, Any], make: Callable[[KubeSettings], Any]) -> Any:
    """One view per distinct API settings (connections and credentials are reused), None without API."""
    settings = KubeSettings.from_conf(conf)
    if not settings.configured:
        return None
    with _views_lock:
        view = views.get(settings)
        if view is None:
            view = views[settings] = make(settings)
        return view


def default_view(conf: Mapping[str, Any]) -> KubeView | None:
    """An ApiKubeView (``kubernetes`` client) for the config's API settings (shared per settings),
    or None without API: what the daemon, which has the client imported anyway, writes through."""
    view: KubeView | None = _shared(conf, _views, ApiKubeView)
    return view


def standalone_view(conf: Mapping[str, Any]) -> KubeView | None:
    """The view of a call with no daemon: the standard-library HttpKubeView (shared per settings),
    or None without API; ``METACNI_KUBE_CLIENT=kubernetes`` selects :func:`default_view`."""
    if os.environ.get("METACNI_KUBE_CLIENT", "").lower() == "kubernetes":
        return default_view(conf)
    from .kubehttp import HttpKubeView

    view: KubeView | None = _shared(conf, _http_views, HttpKubeView)
    return view


def view_for(conf: Mapping[str, Any]) -> KubeView | None:
    """The view to use for one CNI call; None means the node has no API access configured."""
    if _factory is not None:
        return _factory(conf)
    return standalone_view(conf)


# KubeView, ViewFactory and JSON exist for type checkers only (under TYPE_CHECKING above).
__all__ = ["NAD_GROUP", "NAD_PLURAL", "NAD_VERSION", "NETWORK_STATUS", "ApiKubeView", "KubeSettings",
           "default_view", "fingerprint", "set_view_factory", "standalone_view", "view_for"]
