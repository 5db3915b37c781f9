"""The meta plugin's own configuration (stdin of ``type: metacni``).

Key names are Multus' (``docs/multus.md`` section 1.2), so a Multus config migrates by
changing ``type``; unknown keys are ignored as Multus does. Our additions: ``apiTimeout``,
``apiConnectTimeout``, ``apiRetries``, ``readinessTimeout``, ``deviceInfoDir``, and the tenant
policy (:mod:`.trust`): ``allowedPaths``, ``hostPortRange``, ``reservedHostPorts``;
``maxAttachments`` (interfaces per pod, primary included; Multus has no such cap).

This object is only ever built from the node's own config (the runtime's stdin, or the
daemon's node config); a delegate or NAD of type ``metacni`` is refused (:mod:`.trust`).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from metacni.spec import versions
from metacni.spec.errors import CNIError, Code
from metacni.spec.record import field, record

from .kube import KubeSettings
from .trust import TenantPolicy

if TYPE_CHECKING:
    from typing import Any

DEFAULT_CONF_DIR = "/etc/cni/net.d"
DEFAULT_CNI_DIR = "/var/lib/cni/metacni"
DEFAULT_BIN_DIR = "/opt/cni/bin"
DEFAULT_DEVICE_INFO_DIR = "/var/run/k8s.cni.cncf.io/devinfo/cni"
NODE_CONFIG_NAME = "00-metacni.conf"
DEFAULT_MAX_ATTACHMENTS = 32
AUTO = "auto"


def _bad(key: str, reason: str) -> CNIError:
    return CNIError(Code.INVALID_CONFIG, "invalid metacni configuration", f"{key}: {reason}")


def _str(conf: dict[str, Any], key: str, default: str) -> str:
    value = conf.get(key)
    if value is None or value == "":
        return default
    if not isinstance(value, str):
        raise _bad(key, f"must be a string, got {type(value).__name__}")
    return value


def _str_list(conf: dict[str, Any], key: str, default: list[str]) -> list[str]:
    value = conf.get(key)
    if value is None:
        return list(default)
    if isinstance(value, str):  # tolerated: "a,b" as Multus' globalNamespaces
        return [v.strip() for v in value.split(",") if v.strip()]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise _bad(key, "must be a list of strings")
    return list(value)


def _bool(conf: dict[str, Any], key: str) -> bool:
    value = conf.get(key, False)
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    if not isinstance(value, bool):
        raise _bad(key, f"must be a boolean, got {value!r}")
    return value


@record()
class MetaConfig:
    raw: dict[str, Any]
    name: str
    cni_version: str
    conf_dir: str = DEFAULT_CONF_DIR
    cni_dir: str = DEFAULT_CNI_DIR
    bin_dir: str = DEFAULT_BIN_DIR
    cluster_network: str = AUTO
    delegates: list[dict[str, Any]] = field(default_factory=list)
    default_networks: list[str] = field(default_factory=list)
    system_namespaces: list[str] = field(default_factory=lambda: ["kube-system"])
    multus_namespace: str = "kube-system"
    namespace_isolation: bool = False
    global_namespaces: list[str] = field(default_factory=lambda: ["default"])
    readiness_indicator_file: str = ""
    readiness_timeout: float = 45.0
    log_file: str = ""
    log_level: str = ""
    device_info_dir: str = DEFAULT_DEVICE_INFO_DIR
    kube: KubeSettings = field(default_factory=KubeSettings)
    #: interfaces one pod may have, the primary included (a node setting; refused with code 7 beyond)
    max_attachments: int = DEFAULT_MAX_ATTACHMENTS
    #: the file this config was installed as; never chosen as the primary
    own_file: str = NODE_CONFIG_NAME
    #: what tenant input (NADs, annotations) may do: allowedPaths, hostPortRange, reservedHostPorts
    policy: TenantPolicy = field(default_factory=TenantPolicy)

    @classmethod
    def from_dict(cls, conf: dict[str, Any]) -> MetaConfig:
        version = versions.negotiate(conf.get("cniVersion"), conf.get("cniVersions"))
        delegates = conf.get("delegates") or []
        if not isinstance(delegates, list) or not all(isinstance(d, dict) for d in delegates):
            raise _bad("delegates", "must be a list of CNI config objects")
        timeout = conf.get("readinessTimeout", 45.0)
        if isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout < 0:
            raise _bad("readinessTimeout", "must be a non-negative number of seconds")
        max_attachments = conf.get("maxAttachments", DEFAULT_MAX_ATTACHMENTS)
        if isinstance(max_attachments, bool) or not isinstance(max_attachments, int) or max_attachments < 1:
            raise _bad("maxAttachments", "must be a positive integer")
        cfg = cls(
            raw=conf,
            name=str(conf.get("name", "")),
            cni_version=version,
            conf_dir=_str(conf, "confDir", DEFAULT_CONF_DIR),
            cni_dir=_str(conf, "cniDir", DEFAULT_CNI_DIR),
            bin_dir=_str(conf, "binDir", DEFAULT_BIN_DIR),
            cluster_network=_str(conf, "clusterNetwork", AUTO),
            delegates=list(delegates),
            default_networks=_str_list(conf, "defaultNetworks", []),
            system_namespaces=_str_list(conf, "systemNamespaces", ["kube-system"]),
            multus_namespace=_str(conf, "multusNamespace", _str(conf, "metacniNamespace", "kube-system")),
            namespace_isolation=_bool(conf, "namespaceIsolation"),
            global_namespaces=_str_list(conf, "globalNamespaces", ["default"]),
            readiness_indicator_file=_str(conf, "readinessindicatorfile", ""),
            readiness_timeout=float(timeout),
            log_file=_str(conf, "logFile", ""),
            log_level=_str(conf, "logLevel", ""),
            device_info_dir=_str(conf, "deviceInfoDir", DEFAULT_DEVICE_INFO_DIR),
            kube=KubeSettings.from_conf(conf),
            own_file=_str(conf, "ownFile", NODE_CONFIG_NAME),
            max_attachments=max_attachments,
        )
        cfg.policy = TenantPolicy.from_conf(conf, (cfg.cni_dir, cfg.conf_dir, cfg.bin_dir))
        if cfg.cluster_network == AUTO and not os.path.isabs(cfg.conf_dir):
            raise _bad("confDir", f"must be an absolute path, got {cfg.conf_dir!r}")
        return cfg

    def cni_path(self, runtime_path: tuple[str, ...]) -> tuple[str, ...]:
        """binDir first, then the runtime's CNI_PATH (Multus prepends binDir the same way)."""
        out = [self.bin_dir] if self.bin_dir else []
        out.extend(p for p in runtime_path if p not in out)
        return tuple(out)

    def may_use(self, pod_namespace: str, nad_namespace: str) -> bool:
        """namespaceIsolation: a pod uses NADs of its own namespace or of globalNamespaces."""
        if not self.namespace_isolation or nad_namespace == pod_namespace:
            return True
        return nad_namespace in self.global_namespaces
