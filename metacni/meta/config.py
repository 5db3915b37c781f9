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

from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

from pydantic import BeforeValidator, Field, model_validator

from metacni.spec import versions
from metacni.spec.models import validate_config

from .kube import KubeKeys, KubeSettings
from .trust import TenantPolicy

DEFAULT_CONF_DIR = Path("/etc/cni/net.d")
DEFAULT_CNI_DIR = Path("/var/lib/cni/metacni")
DEFAULT_BIN_DIR = Path("/opt/cni/bin")
DEFAULT_DEVICE_INFO_DIR = Path("/var/run/k8s.cni.cncf.io/devinfo/cni")
NODE_CONFIG_NAME = "00-metacni.conf"
DEFAULT_MAX_ATTACHMENTS = 32
AUTO = "auto"


def _or(default: str) -> Any:
    """``null`` or ``""`` mean ``default`` (Multus' string keys)."""
    return BeforeValidator(lambda value: default if value is None or value == "" else value)


def _names(default: tuple[str, ...]) -> Any:
    """A list of names; ``null`` means ``default``, a string is split at commas (Multus'
    globalNamespaces)."""
    def read(value: Any) -> Any:
        if value is None:
            return list(default)
        if isinstance(value, str):
            return [v.strip() for v in value.split(",") if v.strip()]
        return value
    return BeforeValidator(read)


def _bool_text(value: Any) -> Any:
    """``"true"``/``"false"`` in any case, as Multus reads namespaceIsolation."""
    if isinstance(value, str):
        if value.lower() not in ("true", "false"):
            raise ValueError(f"must be a boolean, got {value!r}")
        return value.lower() == "true"
    return value


class MetaKeys(KubeKeys):
    """The keys of a ``type: metacni`` object (the ``cni_config_model`` of the meta plugin),
    in the form :class:`MetaConfig` uses: every Multus spelling is read here, once; the API
    keys are :class:`~.kube.KubeKeys`'.

    Strings: ``null`` or ``""`` mean the default. String lists also accept ``"a,b"`` (Multus'
    globalNamespaces). ``namespaceIsolation`` also accepts ``"true"``/``"false"``.
    """

    name: Any = ""
    confDir: Annotated[str, _or(str(DEFAULT_CONF_DIR))] = str(DEFAULT_CONF_DIR)
    cniDir: Annotated[str, _or(str(DEFAULT_CNI_DIR))] = str(DEFAULT_CNI_DIR)
    binDir: Annotated[str, _or(str(DEFAULT_BIN_DIR))] = str(DEFAULT_BIN_DIR)
    clusterNetwork: Annotated[str, _or(AUTO)] = AUTO
    delegates: Annotated[list[dict[str, Any]], BeforeValidator(lambda v: [] if v is None else v)] = Field(
        default_factory=list)
    defaultNetworks: Annotated[list[str], _names(())] = Field(default_factory=list)
    systemNamespaces: Annotated[list[str], _names(("kube-system",))] = Field(default_factory=lambda: ["kube-system"])
    multusNamespace: Annotated[str, _or("")] = ""
    metacniNamespace: Annotated[str, _or("")] = ""
    namespaceIsolation: Annotated[bool, BeforeValidator(_bool_text)] = False
    globalNamespaces: Annotated[list[str], _names(("default",))] = Field(default_factory=lambda: ["default"])
    readinessindicatorfile: Annotated[str, _or("")] = ""
    readinessTimeout: float = Field(45.0, ge=0)
    logFile: Annotated[str, _or("")] = ""
    logLevel: Annotated[str, _or("")] = ""
    deviceInfoDir: Annotated[str, _or(str(DEFAULT_DEVICE_INFO_DIR))] = str(DEFAULT_DEVICE_INFO_DIR)
    ownFile: Annotated[str, _or(NODE_CONFIG_NAME)] = NODE_CONFIG_NAME
    maxAttachments: int = Field(DEFAULT_MAX_ATTACHMENTS, ge=1)
    #: node links and devices NADs may name (trust.TenantPolicy parses them; typed here for validate)
    hostInterfaces: list[str] | None = None
    hostDevices: list[str] | None = None
    nadPluginTypes: list[str] | None = None

    @model_validator(mode="after")
    def _conf_dir(self) -> MetaKeys:
        if self.clusterNetwork == AUTO and not Path(self.confDir).is_absolute():
            raise ValueError(f"confDir must be an absolute path, got {self.confDir!r}")
        return self

    @property
    def system_namespace(self) -> str:
        """Where cluster-wide NADs live: multusNamespace (or our metacniNamespace), else kube-system."""
        return self.multusNamespace or self.metacniNamespace or "kube-system"


def _optional_path(value: str) -> Path | None:
    """An optional path key (the model reads ``null`` as ``""``): ``""`` means none."""
    return Path(value) if value else None


@dataclass
class MetaConfig:
    raw: dict[str, Any]
    name: str
    cni_version: str
    conf_dir: Path = DEFAULT_CONF_DIR
    cni_dir: Path = DEFAULT_CNI_DIR
    bin_dir: Path = DEFAULT_BIN_DIR
    cluster_network: str = AUTO
    delegates: list[dict[str, Any]] = field(default_factory=list)
    default_networks: list[str] = field(default_factory=list)
    system_namespaces: list[str] = field(default_factory=lambda: ["kube-system"])
    multus_namespace: str = "kube-system"
    namespace_isolation: bool = False
    global_namespaces: list[str] = field(default_factory=lambda: ["default"])
    readiness_indicator_file: Path | None = None
    readiness_timeout: float = 45.0
    log_file: Path | None = None
    log_level: str = ""
    device_info_dir: Path = DEFAULT_DEVICE_INFO_DIR
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
        cfg = cls(
            raw=conf,
            name=str(keys.name),
            cni_version=version,
            conf_dir=Path(keys.confDir),
            cni_dir=Path(keys.cniDir),
            bin_dir=Path(keys.binDir),
            cluster_network=keys.clusterNetwork,
            delegates=list(keys.delegates),
            default_networks=list(keys.defaultNetworks),
            system_namespaces=list(keys.systemNamespaces),
            multus_namespace=keys.system_namespace,
            namespace_isolation=keys.namespaceIsolation,
            global_namespaces=list(keys.globalNamespaces),
            readiness_indicator_file=_optional_path(keys.readinessindicatorfile),
            readiness_timeout=float(keys.readinessTimeout),
            log_file=_optional_path(keys.logFile),
            log_level=keys.logLevel,
            device_info_dir=Path(keys.deviceInfoDir),
            kube=KubeSettings.from_keys(keys, conf),
            own_file=keys.ownFile,
            max_attachments=keys.maxAttachments,
        )
        cfg.policy = TenantPolicy.from_conf(conf, (cfg.cni_dir, cfg.conf_dir, cfg.bin_dir))
        return cfg

    def cni_path(self, runtime_path: tuple[str, ...]) -> tuple[str, ...]:
        """binDir first, then the runtime's CNI_PATH (Multus prepends binDir the same way)."""
        out = [str(self.bin_dir)]
        out.extend(p for p in runtime_path if p not in out)
        return tuple(out)

    def may_use(self, pod_namespace: str, nad_namespace: str) -> bool:
        """namespaceIsolation: a pod uses NADs of its own namespace or of globalNamespaces."""
        if not self.namespace_isolation or nad_namespace == pod_namespace:
            return True
        return nad_namespace in self.global_namespaces
