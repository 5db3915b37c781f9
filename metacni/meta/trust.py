"""What tenant input may do on the node (docs/security.md, docs/design/1401..1403).

Everything read from the Kubernetes API -- a NetworkAttachmentDefinition's ``spec.config``, the
pod's ``k8s.v1.cni.cncf.io/networks`` and ``v1.multus-cni.io/default-network`` annotations --
is written by tenants and may only shape the tenant's own pod's interfaces. This module holds
the rules; :mod:`.networks` applies them where tenant input enters:

- keys the checks read must be spelled as they read them, and no object may hold two keys
  that differ only in case (a Go plugin reads them as one: :mod:`.keyspelling`);
- a network config of type ``metacni`` is refused (code 7) at any depth: node settings
  (``binDir``, ``confDir``, ``logFile``, ...) come only from the node's own config; so are
  the other meta plugins (``multus``, ``multus-shim``) in a NAD;
- node-only keys inside a NAD's plugin configs are removed, with a warning;
- file paths a known plugin reads or writes (host-local ``dataDir``/``resolvConf``, dhcp
  ``daemonSocketPath``, the reference tuning's ``dataDir``) must resolve (realpath) inside the
  directories the node allows, and never inside metacni's own state, conf or binary directories;
- node links and devices a NAD's plugins name (``master``, host-device's ``device``,
  ``deviceID``, ...) obey ``hostInterfaces``/``hostDevices``/``nadPluginTypes`` (:mod:`.hostifs`);
- host ports, addresses and MACs requested through the annotation obey the node's policy,
  and only NADs of the pod's own namespace or of ``globalNamespaces`` may carry them
  (:mod:`.selection_policy`; whether a host port is free: :mod:`.hostports`).

The node's own config (the conf file the runtime passes, its ``delegates``, the files of
``confDir``) is trusted and is not subject to the path rules.
"""

from __future__ import annotations

import contextvars
import logging
import os
from collections.abc import Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from metacni.spec.errors import CNIError, Code

from .hostifs import HostInterfacePolicy, check_plugin
from .keyspelling import PLUGIN_KEYS, check_key_spelling
from .refusal import json_path, plugin_objects, refused

if TYPE_CHECKING:
    from collections.abc import Iterator
    from typing import Any


log = logging.getLogger(__name__)

META_TYPE = "metacni"

#: Keys of the meta plugin's own config. Only the node's config sets them; in a NAD's plugin
#: configs they are removed with a warning. Any ``api<Upper>...`` key counts too (apiTimeout, ...).
NODE_ONLY_KEYS = frozenset({
    "binDir", "cniDir", "confDir", "clusterNetwork", "defaultNetworks", "delegates", "kubeconfig",
    "logFile", "logLevel", "logToStderr", "logOptions", "readinessindicatorfile", "readinessTimeout",
    "namespaceIsolation", "globalNamespaces", "nonIsolatedNamespaces", "systemNamespaces",
    "multusNamespace", "metacniNamespace", "deviceInfoDir", "ownFile", "daemonSocket",
    "allowedPaths", "hostPortRange", "reservedHostPorts", "sharedBridges", "allowNadIpMasq", "metacniTenant",
    "auxiliaryCNIChainName", "hostInterfaces", "hostDevices", "nadPluginTypes",
})

#: Key metacni adds to each plugin object of a NAD's config (never the tenant: it is node-only,
#: so a tenant's own is stripped first): ``{"namespace": <the NAD's>, "sharedBridges": [...]}``.
#: The in-tree bridge plugin bounds what such a config may do on the node (plugins/bridge/tenant.py,
#: docs/design/1408-nad-bridges.md). The same literal is in plugins/bridge/tenant.py.
TENANT_KEY = "metacniTenant"
#: the in-tree plugin that masquerades (what ``ipMasq`` does), refused with it
MASQ_TYPE = "masq"
#: plugin types that get (and enforce) the mark
MARKED_TYPES = frozenset({"bridge"})
#: other meta plugins: they take node settings (``binDir``, ``confDir``, delegates to run) from
#: their config, so a NAD may not name them either (a node migrating from Multus still has them)
OTHER_META_TYPES = frozenset({"multus", "multus-shim"})

#: Keys of a meta config that belong to one call, not to the node (the daemon keeps them
#: from stdin and takes every other key from its node config).
PER_CALL_KEYS = frozenset({"cniVersion", "cniVersions", "name", "type", "runtimeConfig", "args",
                           "prevResult", "capabilities", "disableCheck", "disableGC"})

#: Where each path field may point by default. dataDir: the reference default only, not all of
#: /var/lib/cni (that holds the runtime's result cache and metacni's state). resolvConf: the
#: host's resolver files. daemonSocketPath: the reference dhcp daemon's socket.
DEFAULT_ALLOWED_PATHS: Mapping[str, tuple[Path, ...]] = {
    "dataDir": (Path("/var/lib/cni/networks"),),
    "resolvConf": (Path("/etc/resolv.conf"), Path("/run/systemd/resolve")),
    "daemonSocketPath": (Path("/run/cni/dhcp.sock"),),
    "tuning.dataDir": (Path("/run/cni/tuning"),),
}

#: The path fields of known IPAM/plugin types (reference schemas; the same whether the type
#: runs in-process or as the reference binary): (field, its ``allowedPaths`` key). The reference
#: ``tuning`` writes ``<dataDir>/<containerID>_<ifname>.json`` as root (and removes it at DEL):
#: its own key, so host-local's lease directory does not also admit it.
PATH_FIELDS: Mapping[str, tuple[tuple[str, str], ...]] = {
    "host-local": (("dataDir", "dataDir"), ("resolvConf", "resolvConf")),
    "dhcp": (("daemonSocketPath", "daemonSocketPath"),),
    "tuning": (("dataDir", "tuning.dataDir"),),
}

#: Host ports of the node's own services, refused by default: kubelet (API, read-only,
#: healthz), kube-proxy, controller-manager, scheduler, etcd, apiserver.
DEFAULT_RESERVED_HOST_PORTS = frozenset({10250, 10255, 10248, 10249, 10256, 10257, 10259, 2379, 2380, 6443})
DEFAULT_HOST_PORT_RANGE = (1024, 65535)

def is_node_only(key: str) -> bool:
    """A meta config key only the node's config may set."""
    return key in NODE_ONLY_KEYS or (key.startswith("api") and key[3:4].isupper())


def _bad_setting(key: str, reason: str) -> CNIError:
    return CNIError(Code.INVALID_CONFIG, "invalid metacni configuration", f"{key}: {reason}")


# ------------------------------------------------------------------------------ the node's policy
@dataclass(frozen=True)
class TenantPolicy:
    """The node settings that bound tenant input (keys of the node's meta config)."""

    #: field name -> directories (or files) it may point into, as given (realpath'd on use)
    allowed_paths: Mapping[str, tuple[Path, ...]] = field(default_factory=lambda: dict(DEFAULT_ALLOWED_PATHS))
    host_port_range: tuple[int, int] = DEFAULT_HOST_PORT_RANGE
    reserved_host_ports: frozenset[int] = DEFAULT_RESERVED_HOST_PORTS
    #: metacni's own directories: never a target of a tenant path, whatever allowedPaths says
    protected_dirs: tuple[Path, ...] = ()
    #: pre-existing bridges (not created for a NAD) that NADs may attach pods to
    shared_bridges: tuple[str, ...] = ()
    #: whether a NAD may ask for ipMasq (a masquerade rule on the node)
    allow_nad_ip_masq: bool = True
    #: node links and devices a NAD may name (hostInterfaces, hostDevices, nadPluginTypes)
    host: HostInterfacePolicy = field(default_factory=HostInterfacePolicy)

    @classmethod
    def from_conf(cls, conf: Mapping[str, Any],
                  protected_dirs: tuple[str | os.PathLike[str], ...] = ()) -> TenantPolicy:
        """``allowedPaths`` ({field: [dir, ...]}; a field given replaces its default),
        ``hostPortRange`` ([low, high] or "low-high"), ``reservedHostPorts`` ([port, ...]),
        ``sharedBridges`` ([bridge name, ...]), ``allowNadIpMasq`` (bool, default true), and
        :class:`.hostifs.HostInterfacePolicy`'s keys."""
        allowed = dict(DEFAULT_ALLOWED_PATHS)
        raw = conf.get("allowedPaths")
        if raw is not None:
            if not isinstance(raw, Mapping):
                raise _bad_setting("allowedPaths", "must be an object of field name -> list of directories")
            for key, dirs in raw.items():
                if not isinstance(dirs, list) or not all(isinstance(d, str) and Path(d).is_absolute() for d in dirs):
                    raise _bad_setting(f"allowedPaths.{key}", "must be a list of absolute paths")
                allowed[str(key)] = tuple(map(Path, dirs))
        shared = conf.get("sharedBridges", [])
        if not isinstance(shared, list) or not all(isinstance(b, str) and b for b in shared):
            raise _bad_setting("sharedBridges", "must be a list of bridge names")
        masq = conf.get("allowNadIpMasq", True)
        if not isinstance(masq, bool):
            raise _bad_setting("allowNadIpMasq", "must be true or false")
        return cls(allowed_paths=allowed, host_port_range=_port_range(conf.get("hostPortRange")),
                   reserved_host_ports=_ports(conf.get("reservedHostPorts")),
                   protected_dirs=tuple(Path(d) for d in protected_dirs if os.fspath(d)), shared_bridges=tuple(shared),
                   allow_nad_ip_masq=masq, host=HostInterfacePolicy.from_conf(conf, tuple(shared)))

    # -- paths -------------------------------------------------------------------------
    def check_path(self, field_name: str, value: Any, where: str) -> None:
        """``value`` (after realpath) is inside an allowed entry for ``field_name`` and
        outside metacni's own directories; else code 7 naming ``where``."""
        if not isinstance(value, str) or not value:
            raise refused(f"{where}: must be a non-empty path string")
        if not Path(value).is_absolute():
            raise refused(f"{where}: {value!r} is not an absolute path")
        real = Path(value).resolve()  # realpath: follows every symlink there is; strict=False
        for own in self.protected_dirs:
            if _inside(real, own):
                raise refused(f"{where}: {value!r} is inside metacni's own directory {own}")
        allowed = self.allowed_paths.get(field_name, ())
        if not any(_inside(real, entry) for entry in allowed):
            raise refused(f"{where}: {value!r} (resolved: {real}) is outside the paths the node allows for "
                          f"{field_name} ({', '.join(map(str, allowed)) or 'none'}; "
                          f"node setting allowedPaths.{field_name})")

    # -- host ports --------------------------------------------------------------------
    def check_host_port(self, port: int, where: str) -> None:
        low, high = self.host_port_range
        if not low <= port <= high:
            raise refused(f"{where}: hostPort {port} is outside the node's range {low}-{high} (hostPortRange)")
        if port in self.reserved_host_ports:
            raise refused(f"{where}: hostPort {port} is reserved for a node service (reservedHostPorts)")


def _inside(real: Path, entry: Path) -> bool:
    """``real`` (resolved) is ``entry`` (resolved here) or below it, by whole path elements:
    ``/etc/resolv.conf.d`` is not inside ``/etc/resolv.conf``."""
    return real.is_relative_to(entry.resolve())


def _port(value: Any, key: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
        raise _bad_setting(key, f"{value!r} is not a port number (1-65535)")
    return value


def _port_range(value: Any) -> tuple[int, int]:
    if value is None:
        return DEFAULT_HOST_PORT_RANGE
    if isinstance(value, str) and "-" in value:
        try:
            value = [int(v) for v in value.split("-", 1)]
        except ValueError:
            raise _bad_setting("hostPortRange", f"{value!r} is not 'low-high'") from None
    if not isinstance(value, list) or len(value) != 2:
        raise _bad_setting("hostPortRange", "must be [low, high] or 'low-high'")
    low, high = _port(value[0], "hostPortRange"), _port(value[1], "hostPortRange")
    if low > high:
        raise _bad_setting("hostPortRange", f"low {low} is above high {high}")
    return low, high


def _ports(value: Any) -> frozenset[int]:
    if value is None:
        return DEFAULT_RESERVED_HOST_PORTS
    if not isinstance(value, list):
        raise _bad_setting("reservedHostPorts", "must be a list of port numbers")
    return frozenset(_port(v, "reservedHostPorts") for v in value)


# ------------------------------------------------------------------------------ network configs
def _types_at(data: Mapping[str, Any]) -> Iterator[tuple[str, Any]]:
    """(JSON path, value) of every ``type`` of a conf or conflist: the config's, its plugins',
    their ipam's."""
    for prefix, obj in [("", data), *plugin_objects(data)]:
        if not isinstance(obj, Mapping):
            continue
        ipam = obj.get("ipam")
        yield json_path(prefix, "type"), obj.get("type")
        yield json_path(prefix, "ipam.type"), ipam.get("type") if isinstance(ipam, Mapping) else None


def meta_type_at(data: Mapping[str, Any]) -> str | None:
    """The JSON path of the first ``type: metacni`` in a conf or conflist (the config, its
    plugins, their ipam), None when there is none."""
    return next((path for path, kind in _types_at(data) if kind == META_TYPE), None)


def refuse_meta_type(data: Mapping[str, Any], where: str) -> None:
    """Code 7 when the config or any of its plugins (or their ipam) has type ``metacni``:
    metacni never delegates to itself, so node settings cannot come from a delegate."""
    path = meta_type_at(data)
    if path is not None:
        raise refused(f"{where}: {path} is {META_TYPE!r}; metacni cannot be a delegate, node settings "
                      "(binDir, confDir, cniDir, logFile, clusterNetwork, ...) come only from the node's config")


def skip_meta_delegate(data: Mapping[str, Any], plugins: list[Any], where: str) -> bool:
    """For DEL and GC of a cached record (which may predate these rules): True, with an error
    logged, when the delegate is of type ``metacni`` at any depth. Such a delegate is never run
    (it would take node settings from tenant input) and must not fail the DEL forever; the
    caller frees everything else."""
    path = meta_type_at(data) or meta_type_at({"plugins": plugins})
    if path is None:
        return False
    log.error("%s: cached delegate has %s %r (a record from before the trust rules); skipped, never run, "
              "the other networks are still freed", where, path, META_TYPE)
    return True


#: keys of a NAD's plugin objects whose spelling :func:`.keyspelling.check_key_spelling` holds to
#: (what the checks read, what libcni sets, and the node-only keys stripped here)
CHECKED_PLUGIN_KEYS = PLUGIN_KEYS | NODE_ONLY_KEYS | {TENANT_KEY}


def sanitize_tenant_config(data: dict[str, Any], where: str, policy: TenantPolicy, namespace: str = "") -> bool:
    """Make a NAD's network config (a conf or conflist object, edited in place) safe to run:
    refuses a ``metacni`` type, disallowed paths, (when the node forbids it) ``ipMasq`` and node
    links or devices the node does not give NADs (:func:`.hostifs.check_plugin`) with code 7,
    strips node-only keys with a warning, and marks each plugin object with :data:`TENANT_KEY`
    (the NAD's ``namespace``) if it is a :data:`MARKED_TYPES` plugin.
    Returns whether ``data`` was changed."""
    check_key_spelling(data, where, CHECKED_PLUGIN_KEYS)
    refuse_meta_type(data, where)
    for at, kind in _types_at(data):
        if kind in OTHER_META_TYPES:
            raise refused(f"{where}: {at} is {kind!r}, a meta plugin; it would take node settings (binDir, "
                          "confDir, the delegates to run) from tenant input")
    changed = False
    seen: set[int] = set()
    for prefix, obj in [("", data), *plugin_objects(data)]:
        if not isinstance(obj, dict) or id(obj) in seen:  # a single conf is its own plugin
            continue
        seen.add(id(obj))
        stripped = sorted(k for k in obj if is_node_only(k))
        for key in stripped:
            del obj[key]
        if stripped:
            changed = True
            log.warning("%s: %s: node-only keys ignored (they may only be set in the node's metacni config): %s",
                        where, prefix or "config", ", ".join(map(repr, stripped)))  # tenant text: no raw newlines
        _check_paths(obj, prefix, where, policy)
        if not policy.allow_nad_ip_masq and (obj.get("ipMasq") or obj.get("type") == MASQ_TYPE):
            key = "ipMasq" if obj.get("ipMasq") else "type"
            raise refused(f"{where}: {json_path(prefix, key)}: a NAD may not ask for masquerading on this node "
                          "(node setting allowNadIpMasq is false)")
        if not prefix and isinstance(data.get("plugins"), list):
            continue  # a conflist's top: not a plugin
        check_plugin(obj, prefix, where, policy.host)
        # the plugins that read the mark: other plugins' config models need not know the key
        if obj.get("type") in MARKED_TYPES:
            obj[TENANT_KEY] = {"namespace": namespace, "sharedBridges": list(policy.shared_bridges)}
            changed = True
    return changed


def _check_paths(plugin: Mapping[str, Any], prefix: str, where: str, policy: TenantPolicy) -> None:
    targets = [(prefix, plugin)]
    ipam = plugin.get("ipam")
    if isinstance(ipam, Mapping):
        targets.append((json_path(prefix, "ipam"), ipam))
    for at, obj in targets:
        for name, policy_key in PATH_FIELDS.get(str(obj.get("type", "")), ()):
            if obj.get(name) is not None:  # absent: the plugin's default, chosen by the node
                policy.check_path(policy_key, obj[name], f"{where}: {json_path(at, name)}")


# ------------------------------------------------------------------------------ nesting guard
_active: contextvars.ContextVar[bool] = contextvars.ContextVar("metacni_meta_active", default=False)


@contextmanager
def meta_call() -> Iterator[None]:
    """Around one meta plugin call: a meta call made from inside another (a delegate of type
    ``metacni`` that slipped past the config checks) is refused with code 7."""
    if _active.get():
        raise refused(f"a delegate of type {META_TYPE!r} was invoked from metacni; node settings come only "
                      "from the node's config")
    token = _active.set(True)
    try:
        yield
    finally:
        _active.reset(token)
