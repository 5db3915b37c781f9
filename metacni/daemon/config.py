"""Daemon settings: command-line flags over an optional JSON file over defaults.

Paths are held as :class:`~pathlib.Path`; the flags and the JSON file give strings, which
:class:`DaemonConfig` converts on construction (an optional path given as ``""`` is None).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from .protocol import DEFAULT_PENDING_DIR, DEFAULT_SOCKET

#: the fields holding a path, and those where "" or None mean "none"
_PATHS = ("socket", "conf_dir", "bin_dir", "cache_dir")
_OPTIONAL_PATHS = ("kubeconfig", "pending_dir", "readiness_indicator_file", "node_kubeconfig",
                   "service_account_dir", "log_file")


@dataclass
class DaemonConfig:
    socket: Path = DEFAULT_SOCKET
    node_name: str = ""
    kubeconfig: Path | None = None  # None: in-cluster service account, else no API at all if absent
    use_api: bool = True
    conf_dir: Path = Path("/etc/cni/net.d")
    bin_dir: Path = Path("/opt/cni/bin")
    cni_path: str = "/opt/cni/bin"  # CNI_PATH: directories joined with os.pathsep
    cache_dir: Path = Path("/var/lib/cni")
    metrics_port: int = 0  # also /healthz and /readyz; 0 disables the HTTP endpoint
    # Where /metrics, /healthz, /readyz listen: "" is the node's addresses as seen by kubelet's
    # probes (see docs/operations.md, "The daemon's endpoints"); "0.0.0.0" is every address.
    metrics_host: str = "127.0.0.1"
    concurrency: int = 8  # CNI calls running plugins at once
    # The socket and the metrics port (metacni.daemon.httpserve.Limits): a connection must deliver
    # its whole request within read_timeout; answers are written within write_timeout; at most
    # max_connections are open (more wait in the listen backlog), at most workers threads serve
    # complete requests and queue_size more wait for one (beyond: 503, code 11).
    read_timeout: float = 10.0
    write_timeout: float = 10.0
    max_connections: int = 512
    workers: int = 32
    queue_size: int = 256
    # DELs the shim recorded while the daemon was down (replayed at start, retried every gc_period).
    # None: <node_config cni_dir>/pending-del, else /var/lib/cni/metacni/pending-del, where the shim
    # writes them for a node config with that cniDir.
    pending_dir: Path | None = None
    routes: bool = True
    route_protocol: int = 201  # rtnetlink protocol number marking routes the daemon owns
    reconcile_period: float = 60.0
    gc_period: float = 300.0
    gc_grace: float = 60.0  # cache entries younger than this are never collected by the periodic GC
    ready_timeout: float = 30.0  # how long an ADD waits for the caches to sync
    readiness_indicator_file: Path | None = None
    regenerate_config: bool = True
    # Dynamic attachments (issue #19): a running pod's interfaces follow edits of its networks
    # annotation (metacni.daemon.hotplug). POST /delegate (Multus' API) is served either way.
    dynamic_networks: bool = False
    # Keywords for metacni.meta.install.write_node_config (kubeconfig, host_conf_dir, cni_dir, extra, ...).
    node_config: dict[str, Any] = field(default_factory=dict)
    # The standalone fallback's kubeconfig (path as the daemon sees it), kept in step with the
    # service-account token and CA; None disables. service_account_dir None: the in-cluster mount.
    node_kubeconfig: Path | None = None
    service_account_dir: Path | None = None
    shutdown_grace: float = 10.0
    log_level: str = "INFO"
    log_file: Path | None = None

    def __post_init__(self) -> None:
        """Strings from flags, the JSON file or callers become paths."""
        for name in _PATHS:
            setattr(self, name, Path(getattr(self, name)))
        for name in _OPTIONAL_PATHS:
            value: str | os.PathLike[str] | None = getattr(self, name)
            setattr(self, name, Path(value) if value is not None and os.fspath(value) else None)

    @classmethod
    def load(cls, path: str | os.PathLike[str] | None, **overrides: Any) -> DaemonConfig:
        """File keys may be snake_case or camelCase (``metricsPort``); None overrides are ignored."""
        values: dict[str, Any] = {}
        if path:
            raw = json.loads(Path(path).read_text())
            if not isinstance(raw, dict):
                raise ValueError(f"{path}: daemon config must be a JSON object")
            names = {f.name: f.name for f in fields(cls)} | {_camel(f.name): f.name for f in fields(cls)}
            for key, value in raw.items():
                if key not in names:
                    raise ValueError(f"{path}: unknown daemon setting {key!r}")
                values[names[key]] = value
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)


    def pending_path(self) -> Path:
        """Where the shim's DEL records are: ``pending_dir``, else beside the node's cniDir."""
        if self.pending_dir is not None:
            return self.pending_dir
        cni_dir = self.node_config.get("cni_dir")
        return Path(cni_dir, "pending-del") if isinstance(cni_dir, str) and cni_dir else DEFAULT_PENDING_DIR


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(p.capitalize() for p in rest)
