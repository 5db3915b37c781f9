"""Kubernetes access for the meta plugin, behind one small interface.

Everything the meta plugin needs from the API goes through :class:`KubeView`: the node daemon
installs a watch-cache-backed view with :func:`set_view_factory` (its writes and cache misses go
through :class:`ApiKubeView`), a standalone CNI call uses :class:`ApiKubeView` directly. Both use
the ``kubernetes`` client's public API only (its dynamic client, :mod:`.kube_dynamic`), imported on
the first request: an ADD whose annotations arrive in runtimeConfig never imports it.

Error policy (Multus #492): an API failure is never "no networks". Views raise
``CNIError`` code 11 (try again later) naming the request; only a 404 is an answer (None).
"""

from __future__ import annotations

import abc
import json
import logging
import os
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import BeforeValidator, Field

from metacni.spec.errors import CNIError, Code
from metacni.spec.models import PluginConfig, validate_config

from . import kube_paths

if TYPE_CHECKING:
    from .kube_dynamic import DynamicApi

log = logging.getLogger(__name__)

NAD_GROUP, NAD_VERSION, NAD_PLURAL = kube_paths.NAD_GROUP, kube_paths.NAD_VERSION, kube_paths.NAD_PLURAL
NETWORK_STATUS = "k8s.v1.cni.cncf.io/network-status"

SA_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")
DISCOVERY_SUBDIR = "kube-discovery"  # under cniDir: the API discovery cache (metacni.meta.kube_dynamic)
DEFAULT_TIMEOUT = 10.0
DEFAULT_CONNECT_TIMEOUT = 5.0
DEFAULT_RETRIES = 2

JSON = dict[str, Any]


class KubeView(abc.ABC):
    """What the meta plugin reads from and writes to the API. Objects are raw API JSON dicts.

    ``get_*`` return None only when the object does not exist (404); any other failure
    raises ``CNIError`` (code 11 for transient/API errors). Implementations must be safe to
    call from several threads at once (the daemon serves pods in parallel).
    """

    @abc.abstractmethod
    def get_pod(self, namespace: str, name: str) -> JSON | None: ...

    @abc.abstractmethod
    def get_nad(self, namespace: str, name: str) -> JSON | None: ...

    @abc.abstractmethod
    def patch_pod_network_status(self, namespace: str, name: str, status: list[JSON], *, uid: str = "",
                                 container_id: str = "") -> bool:
        """Set the pod's ``k8s.v1.cni.cncf.io/network-status`` annotation (JSON text of ``status``).

        ``uid`` (the pod's UID as the API gave it) makes the write apply only to that pod, not
        to one re-created under the same name. False: the pod no longer exists, which is not an
        error (it is being deleted). ``container_id`` names the sandbox the list describes: the
        daemon's view only queues the write (:mod:`metacni.daemon.status_writer`) and returns
        True, and a DEL of that container drops it."""


ViewFactory = Callable[[Mapping[str, Any]], KubeView | None]


class KubeKeys(PluginConfig):
    """The API keys of the meta config: ``kubeconfig`` (``null``/``""``: in-cluster or none),
    ``apiTimeout`` and ``apiConnectTimeout`` (seconds, > 0), ``apiRetries`` (>= 0)."""

    kubeconfig: Annotated[str, BeforeValidator(lambda value: "" if value is None else value)] = ""
    apiTimeout: float = Field(DEFAULT_TIMEOUT, gt=0)
    apiConnectTimeout: float = Field(DEFAULT_CONNECT_TIMEOUT, gt=0)
    apiRetries: int = Field(DEFAULT_RETRIES, ge=0)


@dataclass(frozen=True)
class KubeSettings:
    """The API-related keys of the meta config (Multus names plus our timeouts); immutable and
    hashable: views are shared per settings."""

    kubeconfig: Path | None = None
    timeout: float = DEFAULT_TIMEOUT
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT
    retries: int = DEFAULT_RETRIES
    #: where the API discovery cache lives: ``<cniDir>/kube-discovery`` when the config names
    #: cniDir (the node config metacni installs always does), else "": in memory, once per view
    discovery_dir: Path | None = None

    @classmethod
    def from_conf(cls, conf: Mapping[str, Any]) -> KubeSettings:
        """The settings of a meta config, checked by :class:`KubeKeys` (code 7 with the JSON path)."""
        return cls.from_keys(validate_config(KubeKeys, conf, str(conf.get("name", "")), "metacni configuration"), conf)

    @classmethod
    def from_keys(cls, keys: KubeKeys, conf: Mapping[str, Any]) -> KubeSettings:
        """``conf``'s own ``cniDir`` (not a default) places the discovery cache: a config that
        names none keeps it in memory, so ad-hoc configs never write the machine's /var/lib/cni."""
        cni_dir = conf.get("cniDir")
        return cls(kubeconfig=Path(keys.kubeconfig) if keys.kubeconfig else None, timeout=keys.apiTimeout,
                   connect_timeout=keys.apiConnectTimeout, retries=keys.apiRetries,
                   discovery_dir=Path(cni_dir) / DISCOVERY_SUBDIR if isinstance(cni_dir, str) and cni_dir else None)

    @property
    def in_cluster(self) -> bool:
        return self.kubeconfig is None and bool(os.environ.get("KUBERNETES_SERVICE_HOST")) \
            and bool(os.environ.get("KUBERNETES_SERVICE_PORT"))

    @property
    def configured(self) -> bool:
        """False when there is no kubeconfig and no in-cluster environment: no API at all."""
        return self.kubeconfig is not None or self.in_cluster



def fingerprint(*paths: Path) -> tuple[tuple[int, int, int], ...]:
    """(inode, mtime, size) of each path, zeros for a missing one: changes when a file is replaced."""
    out = []
    for path in paths:
        try:
            st = path.stat()
            out.append((st.st_ino, st.st_mtime_ns, st.st_size))
        except OSError:
            out.append((0, 0, 0))
    return tuple(out)


def load_configuration(settings: KubeSettings, sa_dir: str | os.PathLike[str] = SA_DIR) -> Any:
    """A ``kubernetes.client.Configuration`` from the kubeconfig (exec credentials included) or,
    without one, from the in-cluster service account under ``sa_dir``; the ``retries`` budget
    is urllib3's. Raises CNIError 11 naming the source when the credentials cannot be loaded."""
    from kubernetes import client, config
    from kubernetes.config.incluster_config import InClusterConfigLoader

    cfg = client.Configuration()
    try:
        if settings.kubeconfig is not None:  # the client splits config_file on ":": a str
            config.load_kube_config(config_file=str(settings.kubeconfig), client_configuration=cfg,
                                    persist_config=False)
        else:
            InClusterConfigLoader(token_filename=str(Path(sa_dir, "token")),
                                  cert_filename=str(Path(sa_dir, "ca.crt")),
                                  try_refresh_token=False).load_and_set(cfg)
    except Exception as exc:  # ConfigException, OSError, YAML errors
        where = settings.kubeconfig or "in-cluster service account"
        raise CNIError(Code.TRY_AGAIN_LATER, "cannot load Kubernetes credentials",
                       f"{where}: {type(exc).__name__}: {exc}") from None
    cfg.retries = settings.retries
    _normalise_bearer(cfg)
    return cfg


def _normalise_bearer(cfg: Any) -> None:
    """``Bearer <token>`` with the token file's surrounding whitespace (a trailing newline) cut,
    as kubectl sends it: the client's loaders keep the newline (an invalid header) and the
    in-cluster loader writes the scheme in lower case. Also after the loader's refresh hook."""

    def fix(c: Any) -> None:
        for key in ("BearerToken", "authorization"):
            value = (c.api_key or {}).get(key)
            if isinstance(value, str):
                scheme, _, token = value.partition(" ")
                if scheme.lower() == "bearer" and token:
                    c.api_key[key] = f"Bearer {token.strip()}"
                else:
                    c.api_key[key] = value.strip()

    inner = [cfg.refresh_api_key_hook]  # the loader's hook re-installs itself on every call

    def refreshed(c: Any) -> None:
        if inner[0] is not None:
            inner[0](c)
            if c.refresh_api_key_hook is not refreshed:
                inner[0] = c.refresh_api_key_hook
                c.refresh_api_key_hook = refreshed
        fix(c)

    if inner[0] is not None:
        cfg.refresh_api_key_hook = refreshed
    fix(cfg)


class ApiKubeView(KubeView):
    """A KubeView over the real API with the ``kubernetes`` dynamic client (:mod:`.kube_dynamic`).

    Credentials are re-read whenever the kubeconfig file (or the in-cluster token/CA) changes
    and once after a 401, so rotated service-account tokens work (Multus #852). Every request
    carries (connect, read) timeouts from the config (Multus #1461). Objects are read as raw
    JSON: the meta plugin reads annotations and resources, not models. Discovery is cached in
    ``settings.discovery_dir``, so a warm standalone call sends no discovery request.
    """

    def __init__(self, settings: KubeSettings, *, sa_dir: str | os.PathLike[str] = SA_DIR) -> None:
        self.settings = settings
        self.sa_dir = Path(sa_dir)
        self._lock = threading.Lock()
        self._api: DynamicApi | None = None
        self._stamp: tuple[tuple[int, int, int], ...] | None = None

    # ------------------------------------------------------------------ client lifecycle
    def _credential_files(self) -> tuple[Path, ...]:
        if self.settings.kubeconfig is not None:
            return (self.settings.kubeconfig,)
        return (self.sa_dir / "token", self.sa_dir / "ca.crt")

    def _client(self, force: bool = False) -> DynamicApi:
        stamp = fingerprint(*self._credential_files())
        with self._lock:
            if self._api is not None and not force and stamp == self._stamp:
                return self._api
            from kubernetes import client

            from .kube_dynamic import DynamicApi

            cfg = load_configuration(self.settings, self.sa_dir)
            old, self._api = self._api, DynamicApi(client.ApiClient(cfg), self.settings.discovery_dir)
            self._stamp = stamp
            if old is not None:
                _close_quietly(old)
            return self._api

    def close(self) -> None:
        with self._lock:
            if self._api is not None:
                _close_quietly(self._api)
            self._api = None

    def call(self, what: str, fn: Callable[[DynamicApi], Any]) -> Any:
        """Run ``fn(api)`` with the current credentials (requests for this view's methods and
        for :mod:`metacni.meta.events`); 404 → None, 401 → reload credentials and retry once,
        any other failure → CNIError 11 naming ``what``."""
        from kubernetes.client.exceptions import ApiException
        from kubernetes.dynamic.exceptions import ResourceNotFoundError

        for attempt in (0, 1):
            try:
                return fn(self._client(force=attempt == 1))
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
            except ResourceNotFoundError:  # discovery does not know the kind (a CRD not installed)
                return None
            except Exception as exc:  # urllib3 timeouts, refused connections, TLS errors
                raise CNIError(Code.TRY_AGAIN_LATER, "Kubernetes API unreachable",
                               f"{what}: {type(exc).__name__}: {exc}") from None
        raise AssertionError("unreachable")

    @property
    def timeout(self) -> tuple[float, float]:
        """(connect, read) seconds for ``_request_timeout``."""
        return (self.settings.connect_timeout, self.settings.timeout)

    # ------------------------------------------------------------------ KubeView
    def get_pod(self, namespace: str, name: str) -> JSON | None:
        def read(api: DynamicApi) -> JSON:
            return api.get(api.resource("v1", "Pod"), name, namespace, _request_timeout=self.timeout)

        result: JSON | None = self.call(f"GET pod {namespace}/{name}", read)
        return result

    def get_nad(self, namespace: str, name: str) -> JSON | None:
        def read(api: DynamicApi) -> JSON:
            return api.get(api.resource(kube_paths.NAD_API_VERSION, kube_paths.NAD_KIND), name, namespace,
                           _request_timeout=self.timeout)

        result: JSON | None = self.call(f"GET network-attachment-definition {namespace}/{name}", read)
        return result

    def patch_pod_network_status(self, namespace: str, name: str, status: list[JSON], *, uid: str = "",
                                 container_id: str = "") -> bool:
        meta: JSON = {"annotations": {NETWORK_STATUS: json.dumps(status)}}
        if uid:  # the API refuses to change a UID: the patch cannot land on a re-created pod
            meta["uid"] = uid
        body = {"metadata": meta}

        def patch(api: DynamicApi) -> bool:
            api.patch(api.resource("v1", "Pod", "status"), name, namespace, body, kube_paths.STRATEGIC_MERGE_PATCH,
                      _request_timeout=self.timeout)
            return True

        if self.call(f"PATCH pod {namespace}/{name}/status network-status", patch) is None:
            log.warning("pod %s/%s is gone; network-status not written", namespace, name)
            return False
        return True


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
_views_lock = threading.Lock()


def set_view_factory(factory: ViewFactory | None) -> None:
    """Install (or with None, remove) the function that builds a view from the meta config.

    The node daemon installs a watch-cache-backed view here; the factory receives the meta
    plugin's stdin config and may return None for "no API configured".
    """
    global _factory
    _factory = factory


def _shared(conf: Mapping[str, Any], views: dict[KubeSettings, Any], make: Callable[[KubeSettings], Any],
            adjust: Callable[[KubeSettings], KubeSettings] | None = None) -> Any:
    """One view per distinct API settings (connections and credentials are reused), None without
    API; ``adjust`` replaces settings of the config (the daemon's own credentials and state)."""
    settings = KubeSettings.from_conf(conf)
    if adjust is not None:
        settings = adjust(settings)
    if not settings.configured:
        return None
    with _views_lock:
        view = views.get(settings)
        if view is None:
            view = views[settings] = make(settings)
        return view


def default_view(conf: Mapping[str, Any]) -> KubeView | None:
    """An ApiKubeView for the config's API settings (shared per settings), or None without API."""
    view: KubeView | None = _shared(conf, _views, ApiKubeView)
    return view


def view_for(conf: Mapping[str, Any]) -> KubeView | None:
    """The view to use for one CNI call; None means the node has no API access configured."""
    if _factory is not None:
        return _factory(conf)
    return default_view(conf)


__all__ = ["JSON", "NAD_GROUP", "NAD_PLURAL", "NAD_VERSION", "NETWORK_STATUS", "ApiKubeView", "KubeSettings",
           "KubeView", "ViewFactory", "default_view", "fingerprint", "set_view_factory", "view_for"]
