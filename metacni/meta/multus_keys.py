"""Multus configuration keys and what metacni does with each (``metacni validate`` warnings).

:data:`MULTUS_KEYS` is the single list behind both the warnings and the "Migrating from
Multus" table of docs/operations.md (tests/meta/test_migration_keys.py keeps them in step).
Each entry says whether metacni honours the key (``True``) or ignores it (``False``), and how.
:func:`warnings` names every ignored key of a meta config by its JSON path; none is silently
accepted. Keys of Multus' sources: pkg/types/types.go ``NetConf``, the thick shim's
``ShimNetConf`` and the daemon's ``ControllerNetConf``/auto-config (docs/multus.md 1.2).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: ``type`` values of a meta config this pass looks at.
META_TYPES = frozenset({"metacni", "multus", "multus-shim"})
_LOG_OPTIONS = ("maxSize", "maxAge", "maxBackups", "compress")


@dataclass(frozen=True)
class MultusKey:
    honoured: bool
    what: str  # what metacni does with it (or why it ignores it), one sentence


_THICK = "a Multus thick-daemon setting; metacni's daemon takes its own options (`metacni daemon --help`)"
MULTUS_KEYS: dict[str, MultusKey] = {
    "cniVersion": MultusKey(True, "The config's version; `cniVersions` (1.1) is negotiated too."),
    "name": MultusKey(True, "Used as is."),
    "type": MultusKey(True, "Must be `metacni` (the only change a thin Multus config needs)."),
    "confDir": MultusKey(True, "Same meaning; the default is `/etc/cni/net.d` (Multus: `/etc/cni/multus/net.d`)."),
    "cniDir": MultusKey(True, "Same meaning (delegate record + `results/` cache); default `/var/lib/cni/metacni`."),
    "binDir": MultusKey(True, "Prepended to CNI_PATH, as Multus."),
    "kubeconfig": MultusKey(True, "Same; in-cluster config when empty, as Multus."),
    "logFile": MultusKey(True, "Same."),
    "logLevel": MultusKey(True, "Same levels (`debug`, `verbose`, `error`, `panic`)."),
    "logToStderr": MultusKey(True, "Same (default true)."),
    "logOptions": MultusKey(True, "Same lumberjack keys: `maxSize`, `maxAge`, `maxBackups`, `compress`."),
    "namespaceIsolation": MultusKey(True, "Same."),
    "globalNamespaces": MultusKey(True, "Same (a comma string or a list)."),
    "readinessindicatorfile": MultusKey(True, "Same; waits `readinessTimeout` seconds (default 45)."),
    "clusterNetwork": MultusKey(True, "Same resolution: a bare name is a NAD in `multusNamespace`, then a "
                                      "confDir file with that CNI name; a path is a file or directory."),
    "defaultNetworks": MultusKey(True, "Same; also applied when the primary comes from `delegates` "
                                       "(Multus applies them only with `clusterNetwork`)."),
    "systemNamespaces": MultusKey(True, "Same."),
    "multusNamespace": MultusKey(True, "Same."),
    "delegates": MultusKey(True, "Every entry attached, the first as the primary, the others `net<i>`; "
                                 "ignored when `clusterNetwork` is set, as Multus."),
    "capabilities": MultusKey(True, "Same; the runtime's runtimeConfig reaches the primary."),
    "runtimeConfig": MultusKey(True, "Same."),
    "prevResult": MultusKey(True, "Accepted (metacni may sit in a chain)."),
    "retryDeleteOnError": MultusKey(False, "Ignored: metacni always keeps its delegate record until every "
                                           "delegate DEL succeeded (Multus' `true`)."),
    "auxiliaryCNIChainName": MultusKey(True, "Same: a `passthru`-headed chain of `<dir of clusterNetwork>/<name>/"
                                             "*.conf`, run last on `net<i>` for every pod, undone by DEL; "
                                             "`clusterNetwork` must be a path. A bad name or plugin file is "
                                             "refused (Multus skips the chain)."),
    "daemonSocketDir": MultusKey(False, "Ignored (thick shim): the shim finds metacni's daemon by "
                                        "`daemonSocket`."),
    "defaultnetworkwaitseconds": MultusKey(False, "Ignored, as by Multus (obsolete)."),
    **{key: MultusKey(False, f"Ignored: {_THICK}.") for key in (
        "chrootDir", "socketDir", "metricsPort", "enablePprof", "connectionLimit", "perNodeCertificate",
        "cniConfigDir", "multusAutoconfigDir", "multusConfigFile", "multusMasterCNI", "overrideNetworkName",
        "forceCNIVersion")},
}


def _meta_objects(data: Any) -> list[tuple[str, dict[str, Any]]]:
    """(JSON path, object) of each meta config in ``data``: the file itself or a plugin of a list."""
    if not isinstance(data, dict):
        return []
    if isinstance(data.get("plugins"), list):
        return [(f"$.plugins[{i}]", p) for i, p in enumerate(data["plugins"])
                if isinstance(p, dict) and p.get("type") in META_TYPES]
    return [("$", data)] if data.get("type") in META_TYPES else []


def warnings(data: Any) -> list[str]:
    """``"<JSON path>: <reason>"`` for every Multus key of a meta config that metacni ignores."""
    out: list[str] = []
    for base, conf in _meta_objects(data):
        if conf.get("type") in ("multus", "multus-shim"):
            out.append(f"{base}.type: {conf['type']!r} is Multus' plugin; set \"metacni\"")
        for key in conf:
            entry = MULTUS_KEYS.get(key)
            if entry is not None and not entry.honoured:
                out.append(f"{base}.{key}: {entry.what}")
        if conf.get("delegates") and conf.get("clusterNetwork"):
            out.append(f"{base}.delegates: ignored because clusterNetwork is set (as Multus)")
        options = conf.get("logOptions")
        if isinstance(options, dict):
            out.extend(f"{base}.logOptions.{key}: unknown logOptions key, ignored (known: "
                       f"{', '.join(_LOG_OPTIONS)})" for key in options if key not in _LOG_OPTIONS)
    return out


def file_warnings(path: Path) -> list[str]:
    """:func:`warnings` of a config file; nothing for an unreadable or non-JSON file (the
    validator reports those)."""
    try:
        return warnings(json.loads(path.read_bytes()))
    except (OSError, ValueError):
        return []


def convert(conf: dict[str, Any], daemon_config: dict[str, Any] | None = None) -> dict[str, Any]:
    """A Multus config as a metacni one: thin (``type: multus``) or thick (the shim's
    ``type: multus-shim`` stdin, with the daemon's ``daemon-config.json`` laid over it, top-level
    keys of the daemon winning, as Multus' server does). Ignored keys are dropped (see
    :func:`warnings` for what each meant); ``type`` becomes ``metacni``."""
    merged = {**conf, **(daemon_config or {})}
    out = {k: v for k, v in merged.items() if k not in MULTUS_KEYS or MULTUS_KEYS[k].honoured}
    out["type"] = "metacni"
    return out
