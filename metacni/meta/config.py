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
from dataclasses import dataclass, field
from typing import Any

from pydantic import Field, field_validator, model_validator

from metacni.spec import versions
from metacni.spec.models import PluginConfig, validate_config

from .kube import KubeSettings
from .trust import TenantPolicy

DEFAULT_CONF_DIR = "/etc/cni/net.d"
DEFAULT_CNI_DIR = "/var/lib/cni/metacni"
DEFAULT_BIN_DIR = "/opt/cni/bin"
DEFAULT_DEVICE_INFO_DIR = "/var/run/k8s.cni.cncf.io/devinfo/cni"
NODE_CONFIG_NAME = "00-metacni.conf"
DEFAULT_MAX_ATTACHMENTS = 32
AUTO = "auto"


class MetaKeys(PluginConfig):
    """The keys of a ``type: metacni`` object as JSON holds them (the ``cni_config_model`` of
    the meta plugin); :meth:`MetaConfig.from_dict` turns them into the runtime config.

    Strings: ``null`` or ``""`` mean the default. String lists also accept ``"a,b"`` (Multus'
    globalNamespaces). ``namespaceIsolation`` also accepts ``"true"``/``"false"``.
    """

    name: Any = ""
    confDir: str | None = None
    cniDir: str | None = None
    binDir: str | None = None
    clusterNetwork: str | None = None
    delegates: list[dict[str, Any]] | None = None
    defaultNetworks: list[str] | str | None = None
    systemNamespaces: list[str] | str | None = None
    multusNamespace: str | None = None
    metacniNamespace: str | None = None
    namespaceIsolation: bool | str = False
    globalNamespaces: list[str] | str | None = None
    readinessindicatorfile: str | None = None
    readinessTimeout: float = Field(45.0, ge=0)
    logFile: str | None = None
    logLevel: str | None = None
    deviceInfoDir: str | None = None
    ownFile: str | None = None
    maxAttachments: int = Field(DEFAULT_MAX_ATTACHMENTS, ge=1)
    #: node links and devices NADs may name (trust.TenantPolicy parses them; typed here for validate)
    hostInterfaces: list[str] | None = None
    hostDevices: list[str] | None = None
    nadPluginTypes: list[str] | None = None

    @field_validator("namespaceIsolation")
    @classmethod
    def _bool_text(cls, value: bool | str) -> bool | str:
        if isinstance(value, str) and value.lower() not in ("true", "false"):
            raise ValueError(f"must be a boolean, got {value!r}")
        return value

    @model_validator(mode="after")
    def _conf_dir(self) -> MetaKeys:
        conf_dir = self.confDir or DEFAULT_CONF_DIR
        if (self.clusterNetwork or AUTO) == AUTO and not os.path.isabs(conf_dir):
            raise ValueError(f"confDir must be an absolute path, got {conf_dir!r}")
        return self


def _names(value: list[str] | str | None, default: list[str]) -> list[str]:
    if value is None:
        return list(default)
    if isinstance(value, str):  # tolerated: "a,b" as Multus' globalNamespaces
        return [v.strip() for v in value.split(",") if v.strip()]
    return list(value)


@dataclass
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
        """The node's config, checked by :class:`MetaKeys` (code 7 naming the JSON path), the
        Kubernetes settings and the tenant policy (:mod:`.trust`)."""
        version = versions.negotiate(conf.get("cniVersion"), conf.get("cniVersions"))
        keys = validate_config(MetaKeys, conf, str(conf.get("name", "")), "metacni configuration")
        isolation = keys.namespaceIsolation
        cfg = cls(
            raw=conf,
            name=str(keys.name),
            cni_version=version,
            conf_dir=keys.confDir or DEFAULT_CONF_DIR,
            cni_dir=keys.cniDir or DEFAULT_CNI_DIR,
            bin_dir=keys.binDir or DEFAULT_BIN_DIR,
            cluster_network=keys.clusterNetwork or AUTO,
            delegates=list(keys.delegates or []),
            default_networks=_names(keys.defaultNetworks, []),
            system_namespaces=_names(keys.systemNamespaces, ["kube-system"]),
            multus_namespace=keys.multusNamespace or keys.metacniNamespace or "kube-system",
            namespace_isolation=isolation.lower() == "true" if isinstance(isolation, str) else isolation,
            global_namespaces=_names(keys.globalNamespaces, ["default"]),
            readiness_indicator_file=keys.readinessindicatorfile or "",
            readiness_timeout=float(keys.readinessTimeout),
            log_file=keys.logFile or "",
            log_level=keys.logLevel or "",
            device_info_dir=keys.deviceInfoDir or DEFAULT_DEVICE_INFO_DIR,
            kube=KubeSettings.from_conf(conf),
            own_file=keys.ownFile or NODE_CONFIG_NAME,
            max_attachments=keys.maxAttachments,
        )
        cfg.policy = TenantPolicy.from_conf(conf, (cfg.cni_dir, cfg.conf_dir, cfg.bin_dir))
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
