"""Network configurations and configuration lists: schema, validation, and loading.

Plugin objects are kept as the raw JSON objects they were read from, so keys we do not know
(a plugin's own settings) pass through unchanged, as the spec requires. The keys the spec
defines are the pydantic models :class:`NetConf` and :class:`NetConfList`;
:func:`schema_problems` names the JSON path of every problem they find.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any

from pydantic import Field, StrictBool, field_validator

from . import naming, safejson, versions
from .errors import CNIError, Code
from .models import IPAMSection, PluginConfig, model_problems

CONF_EXTENSIONS = (".conf", ".conflist", ".json")


def _bool_like(value: Any) -> Any:
    """libcni accepts JSON booleans or the strings "true"/"false" in any case."""
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    return value


class DNSConf(PluginConfig):
    """A plugin object's ``dns`` key (unknown keys inside pass through)."""

    nameservers: list[str] | None = None
    domain: str | None = None
    search: list[str] | None = None
    options: list[str] | None = None


class NetConf(PluginConfig):
    """One plugin object: the keys the spec defines; the plugin's own keys are allowed."""

    type: str
    name: str | None = None
    cniVersion: str | None = None
    capabilities: dict[str, StrictBool] | None = None
    ipam: IPAMSection | None = None
    dns: DNSConf | None = None
    ipMasq: bool | None = None
    mtu: int | None = None

    @field_validator("type")
    @classmethod
    def _plugin_name(cls, value: str) -> str:
        if not value or "/" in value or "\\" in value or value in (".", ".."):
            raise ValueError("must be a plugin name without path separators")
        return value


class NetConfList(PluginConfig):
    """A configuration list, checked in the order of its keys in the spec."""

    name: str
    cniVersion: str | None = None
    cniVersions: list[str] | None = None
    disableCheck: bool | None = None
    disableGC: bool | None = None
    loadOnlyInlinedPlugins: bool | None = None
    plugins: list[NetConf] = Field(min_length=1)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        problem = naming.network_name_problem(value)
        if problem:
            raise ValueError(problem)
        return value

    @field_validator("cniVersion")
    @classmethod
    def _version(cls, value: str | None) -> str | None:
        if value and not versions.is_known(value):
            raise ValueError(f"unsupported CNI version {value!r}; supported: {', '.join(versions.ALL_VERSIONS)}")
        return value

    @field_validator("cniVersions")
    @classmethod
    def _versions(cls, value: list[str] | None) -> list[str] | None:
        for item in value or []:
            versions.parse(item)  # its ValueError names the entry
        return value

    @field_validator("disableCheck", "disableGC", "loadOnlyInlinedPlugins", mode="before")
    @classmethod
    def _bool_text(cls, value: Any) -> Any:
        return _bool_like(value)


@dataclass
class Problem:
    """One validation problem, located by a JSON path such as ``$.plugins[1].mtu``."""

    path: str
    reason: str

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


def schema_problems(data: Any, *, as_list: bool) -> list[Problem]:
    """Validate a config list (or a single plugin config) and return every problem found."""
    if not isinstance(data, dict):
        return [Problem("$", "must be a JSON object")]
    found = model_problems(NetConfList if as_list else NetConf, data)
    problems = [Problem(path, reason) for path, reason in found]
    if not as_list:
        if "name" in data and naming.network_name_problem(data["name"]):
            problems.append(Problem("$.name", str(naming.network_name_problem(data["name"]))))
        version = data.get("cniVersion")
        if isinstance(version, str) and version and not versions.is_known(version):
            problems.append(Problem("$.cniVersion", f"unsupported CNI version {version!r}"))
    return problems


@dataclass
class NetworkList:
    """A loaded configuration list, ready to run.

    ``plugins`` are the raw plugin objects. ``raw`` is the exact bytes the list came from;
    libcni caches them (base64) so another runtime can DEL with the same config.
    """

    name: str
    cni_version: str
    plugins: list[dict[str, Any]]
    disable_check: bool = False
    disable_gc: bool = False
    raw: bytes = b""
    source: str = ""
    data: dict[str, Any] = field(default_factory=dict)


def _decode(raw: bytes, source: str) -> Any:
    try:
        return safejson.loads(raw)
    except ValueError as exc:  # also invalid UTF-8, deep nesting, NaN (safejson)
        raise CNIError(Code.DECODE_FAILURE, "failed to decode network configuration",
                       f"{source or 'stdin'}: {exc}") from None


def network_list_from_bytes(raw: bytes, source: str = "", *, is_list: bool | None = None) -> NetworkList:
    """Parse a .conflist, or wrap a single .conf as libcni's ``ConfListFromConf`` does.

    ``is_list`` None means: decide by the presence of a ``plugins`` key.
    """
    data = _decode(raw, source)
    if not isinstance(data, dict):
        raise CNIError(Code.DECODE_FAILURE, "failed to decode network configuration",
                       f"{source or 'stdin'}: top level must be a JSON object")
    if is_list is None:
        is_list = "plugins" in data
    if not is_list:
        problems = schema_problems(data, as_list=False)
        if problems:
            raise CNIError(Code.INVALID_CONFIG, "invalid network configuration",
                           f"{source or 'stdin'}: " + "; ".join(map(str, problems)))
        wrapped = {"name": data.get("name", ""), "cniVersion": data.get("cniVersion", ""), "plugins": [data]}
        if "cniVersions" in data:
            wrapped["cniVersions"] = data["cniVersions"]
        for key in ("disableCheck", "disableGC"):
            if key in data:
                wrapped[key] = data[key]
        data = wrapped
    problems = schema_problems(data, as_list=True)
    if problems:
        raise CNIError(Code.INVALID_CONFIG, "invalid network configuration list",
                       f"{source or 'stdin'}: " + "; ".join(map(str, problems)))
    version = versions.negotiate(data.get("cniVersion"), data.get("cniVersions"))
    return NetworkList(
        name=data["name"],
        cni_version=version,
        plugins=list(data["plugins"]),
        disable_check=bool(_bool_like(data.get("disableCheck", False))),
        disable_gc=bool(_bool_like(data.get("disableGC", False))),
        raw=raw,
        source=source,
        data=data,
    )


def extension(path: str) -> str:
    """A file's extension as libcni sees it (Go's ``filepath.Ext``): from the last dot of the last
    element, so ``.conf`` and ``a..conf`` end in ``.conf``; ``os.path.splitext`` skips leading dots."""
    name = path.rpartition("/")[2]
    dot = name.rfind(".")
    return name[dot:] if dot >= 0 else ""


def network_list_from_file(path: str | os.PathLike[str]) -> NetworkList:
    path = os.fspath(path)
    try:
        with open(path, "rb") as handle:
            raw = handle.read()
    except OSError as exc:
        raise CNIError(Code.IO_FAILURE, "cannot read network configuration", f"{path}: {exc.strerror}") from None
    if extension(path) == ".conflist":
        return conflist_from_file_bytes(raw, path)
    return network_list_from_bytes(raw, path, is_list=False)


def conflist_from_file_bytes(raw: bytes, path: str) -> NetworkList:
    """A .conflist read from ``path``, loaded as libcni 1.3's ``NetworkConfFromFile`` does:
    unless ``loadOnlyInlinedPlugins`` is true, the plugin objects of ``<dir of path>/<name>/*.conf``
    (lexical order, each needing a ``type``; a missing directory adds nothing) are appended after
    ``plugins``, which may then be absent. ``loadOnlyInlinedPlugins`` true needs ``plugins``; a
    list with no plugin at all is an error ("no plugin configs found"). Bytes that do not come
    from a file (stdin, a NAD) never load plugins from anywhere (``network_list_from_bytes``)."""
    data = _decode(raw, path)
    if not isinstance(data, dict) or not isinstance(data.get("name"), str):
        return network_list_from_bytes(raw, path, is_list=True)  # its schema errors, as before
    if not loads_siblings(data):
        if "plugins" not in data:
            raise CNIError(Code.INVALID_CONFIG, "invalid network configuration list",
                           f"{path}: loadOnlyInlinedPlugins is true, and there is no 'plugins' key")
        return network_list_from_bytes(raw, path, is_list=True)
    extra = _sibling_plugins(os.path.dirname(path), data["name"])
    if not extra:
        if "plugins" not in data:
            raise CNIError(Code.INVALID_CONFIG, "no plugin configs found",
                           f"{path}: no 'plugins' and no plugin config in "
                           f"{os.path.join(os.path.dirname(path), data['name'])}")
        return network_list_from_bytes(raw, path, is_list=True)
    inline = data.get("plugins", [])
    if not isinstance(inline, list):
        return network_list_from_bytes(raw, path, is_list=True)  # reported as not a list
    merged = {**data, "plugins": [*inline, *extra]}
    return network_list_from_bytes(json.dumps(merged).encode(), path, is_list=True)


def loads_siblings(data: dict[str, Any]) -> bool:
    """Whether a conflist *file* with this content loads ``<dir>/<name>/*.conf`` (libcni 1.3:
    ``loadOnlyInlinedPlugins`` is not true)."""
    return _bool_like(data.get("loadOnlyInlinedPlugins", False)) is not True


def sibling_conf_paths(conf_dir: str, name: str) -> list[str]:
    """The files of ``<conf_dir>/<name>/*.conf`` in lexical order (libcni
    ``NetworkPluginConfsFromFiles``; not recursive); none for a missing directory or a name that
    is not a single path element (a schema error anyway). An unreadable directory is code 5."""
    if not name or naming.network_name_problem(name) or "/" in name or name in (".", ".."):
        return []
    directory = os.path.join(conf_dir or ".", name)
    try:
        names = sorted(os.listdir(directory))
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise CNIError(Code.IO_FAILURE, "cannot read plugin config files",
                       f"{directory}: {exc.strerror}") from None
    paths = (os.path.join(directory, entry) for entry in names if extension(entry) == ".conf")
    return [p for p in paths if os.path.isfile(p)]


def sibling_plugin(path: str) -> dict[str, Any]:
    """One sibling plugin file's object; code 5/6/7 naming the file when it cannot be one."""
    try:
        with open(path, "rb") as handle:
            plugin = _decode(handle.read(), path)
    except OSError as exc:
        raise CNIError(Code.IO_FAILURE, "cannot read plugin config", f"{path}: {exc.strerror}") from None
    if not isinstance(plugin, dict) or not isinstance(plugin.get("type"), str) or not plugin["type"]:
        raise CNIError(Code.INVALID_CONFIG, "invalid plugin config", f"{path}: missing 'type'")
    return plugin


def _sibling_plugins(conf_dir: str, name: str) -> list[dict[str, Any]]:
    """The plugin objects of ``<conf_dir>/<name>/*.conf``; the first bad file is an error."""
    return [sibling_plugin(path) for path in sibling_conf_paths(conf_dir, name)]


def conf_files(conf_dir: str | os.PathLike[str]) -> list[str]:
    """Config files of one directory in lexical order (libcni ``ConfFiles``); missing dir is empty."""
    directory = os.fspath(conf_dir) or "."
    try:
        names = sorted(os.listdir(directory))
    except FileNotFoundError:
        return []
    paths = (os.path.join(directory, n) for n in names if extension(n) in CONF_EXTENSIONS)
    return [p for p in paths if os.path.isfile(p)]


def find_network(conf_dir: str | os.PathLike[str], name: str) -> NetworkList:
    """Load a network by name: .conflist files first, then .conf/.json, in lexical order."""
    ordered = sorted(conf_files(conf_dir), key=lambda p: extension(p) != ".conflist")  # stable
    for path in ordered:
        try:
            with open(path, "rb") as handle:
                data = safejson.loads(handle.read())
        except (OSError, ValueError):
            continue
        if isinstance(data, dict) and data.get("name") == name:
            return network_list_from_file(path)
    raise CNIError(Code.INVALID_CONFIG, "network not found",
                   f"no network named {name!r} in {conf_dir}")


def load_network(ref: str, conf_dir: str | os.PathLike[str]) -> NetworkList:
    """A file path (anything containing '/' or ending in a config extension) or a network name."""
    if "/" in ref or extension(ref) in CONF_EXTENSIONS:
        path = ref
        if not os.path.isabs(path) and not os.path.exists(path):
            path = os.path.join(conf_dir, ref)
        return network_list_from_file(path)
    return find_network(conf_dir, ref)
