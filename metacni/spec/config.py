"""Network configurations and configuration lists: schema, validation, and loading.

Plugin objects are kept as the raw JSON objects they were read from, so keys we do not know
(a plugin's own settings) pass through unchanged, as the spec requires. The pydantic models
below are the schema used to validate them and to name the JSON path of every problem.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr, ValidationError, field_validator

from . import naming, versions
from .errors import CNIError, Code

CONF_EXTENSIONS = (".conf", ".conflist", ".json")


def _bool_like(value: Any) -> Any:
    """libcni accepts JSON booleans or the strings "true"/"false" in any case."""
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    return value


class IPAMSchema(BaseModel):
    model_config = ConfigDict(extra="allow")
    type: StrictStr | None = None


class DNSSchema(BaseModel):
    model_config = ConfigDict(extra="allow")
    nameservers: list[StrictStr] | None = None
    domain: StrictStr | None = None
    search: list[StrictStr] | None = None
    options: list[StrictStr] | None = None


class PluginSchema(BaseModel):
    """One plugin object. Unknown keys are the plugin's own and are allowed."""

    model_config = ConfigDict(extra="allow")
    type: StrictStr
    name: StrictStr | None = None
    cniVersion: StrictStr | None = None
    capabilities: dict[StrictStr, StrictBool] | None = None
    ipam: IPAMSchema | None = None
    dns: DNSSchema | None = None
    ipMasq: StrictBool | None = None
    mtu: StrictInt | None = None

    @field_validator("type")
    @classmethod
    def _type_is_a_name(cls, value: str) -> str:
        if not value or "/" in value or "\\" in value or value in (".", ".."):
            raise ValueError("must be a plugin name without path separators")
        return value


class ConfListSchema(BaseModel):
    model_config = ConfigDict(extra="allow")
    name: StrictStr
    cniVersion: StrictStr | None = None
    cniVersions: list[StrictStr] | None = None
    disableCheck: StrictBool | None = None
    disableGC: StrictBool | None = None
    loadOnlyInlinedPlugins: StrictBool | None = None
    plugins: list[PluginSchema] = Field(min_length=1)

    _bools = field_validator("disableCheck", "disableGC", "loadOnlyInlinedPlugins", mode="before")(
        classmethod(lambda cls, v: _bool_like(v))
    )

    @field_validator("name")
    @classmethod
    def _name_rule(cls, value: str) -> str:
        problem = naming.network_name_problem(value)
        if problem:
            raise ValueError(problem)
        return value

    @field_validator("cniVersion")
    @classmethod
    def _known_version(cls, value: str | None) -> str | None:
        if value and not versions.is_known(value):
            raise ValueError(f"unsupported CNI version {value!r}; supported: {', '.join(versions.ALL_VERSIONS)}")
        return value

    @field_validator("cniVersions")
    @classmethod
    def _parsable_versions(cls, value: list[str] | None) -> list[str] | None:
        for item in value or []:
            versions.parse(item)
        return value


@dataclass
class Problem:
    """One validation problem, located by a JSON path such as ``$.plugins[1].mtu``."""

    path: str
    reason: str

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


def _json_path(loc: tuple[Any, ...]) -> str:
    out = "$"
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out


def schema_problems(data: Any, *, as_list: bool) -> list[Problem]:
    """Validate a config list (or a single plugin config) and return every problem found."""
    if not isinstance(data, dict):
        return [Problem("$", "must be a JSON object")]
    model: type[BaseModel] = ConfListSchema if as_list else PluginSchema
    problems: list[Problem] = []
    try:
        model.model_validate(data)
    except ValidationError as exc:
        for err in exc.errors():
            loc = tuple(err["loc"])
            problems.append(Problem(_json_path(loc), err["msg"].removeprefix("Value error, ")))
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
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
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


def network_list_from_file(path: str | Path) -> NetworkList:
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise CNIError(Code.IO_FAILURE, "cannot read network configuration", f"{path}: {exc.strerror}") from None
    return network_list_from_bytes(raw, str(path), is_list=path.suffix == ".conflist")


def conf_files(conf_dir: str | Path) -> list[Path]:
    """Config files of one directory in lexical order (libcni ``ConfFiles``); missing dir is empty."""
    directory = Path(conf_dir)
    try:
        entries = sorted(p for p in directory.iterdir() if p.is_file() and p.suffix in CONF_EXTENSIONS)
    except FileNotFoundError:
        return []
    return entries


def find_network(conf_dir: str | Path, name: str) -> NetworkList:
    """Load a network by name: .conflist files first, then .conf/.json, in lexical order."""
    files = conf_files(conf_dir)
    ordered = [p for p in files if p.suffix == ".conflist"] + [p for p in files if p.suffix != ".conflist"]
    for path in ordered:
        try:
            data = json.loads(path.read_bytes())
        except (OSError, ValueError):
            continue
        if isinstance(data, dict) and data.get("name") == name:
            return network_list_from_file(path)
    raise CNIError(Code.INVALID_CONFIG, "network not found",
                   f"no network named {name!r} in {conf_dir}")


def load_network(ref: str, conf_dir: str | Path) -> NetworkList:
    """A file path (anything containing '/' or ending in a config extension) or a network name."""
    path = Path(ref)
    if "/" in ref or path.suffix in CONF_EXTENSIONS:
        if not path.is_absolute() and not path.exists():
            path = Path(conf_dir) / ref
        return network_list_from_file(path)
    return find_network(conf_dir, ref)
