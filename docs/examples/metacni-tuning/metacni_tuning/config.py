"""What ``tuning-py`` is asked to do, parsed and checked before anything is changed.

Three sources, each with its own trust level:

- the conflist (written by the node's admin): ``mtu``, ``mac``, ``sysctl``, ``allowedSysctls``;
- CNI_ARGS (set from the pod's side, untrusted): ``MTU``, ``MAC`` and ``SYSCTL.<key>``;
  a sysctl from CNI_ARGS must match a glob in ``allowedSysctls`` (none do by default);
- runtimeConfig ``mac`` (the ``mac`` capability), as the reference ``tuning`` plugin.

Later sources win: config < CNI_ARGS < runtimeConfig. Every sysctl must live under
``net.`` -- those are the ones that belong to the pod's network namespace; anything else
would change the node. ``IFNAME`` as a key component stands for CNI_IFNAME.
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass, field
from typing import Annotated, Any

from pydantic import BeforeValidator, Field, field_validator

from metacni.plugin import CNIError, PluginConfig, Request, bad_field, validate_config

DEFAULT_DATA_DIR = "/var/lib/cni/tuning-py"
ARGS_SYSCTL_PREFIX = "SYSCTL."
IFNAME_PLACEHOLDER = "IFNAME"
_MAC_RE = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")


@dataclass(frozen=True)
class Sysctl:
    """One sysctl: ``key`` as written (dotted, with ``IFNAME``), ``parts`` for /proc/sys."""

    key: str
    parts: tuple[str, ...]
    value: str

    def on(self, ifname: str) -> Sysctl:
        """This sysctl with ``IFNAME`` in its path replaced by ``ifname``."""
        return Sysctl(self.key, tuple(ifname if p == IFNAME_PLACEHOLDER else p for p in self.parts), self.value)


@dataclass(frozen=True)
class Tuning:
    mtu: int | None = None
    mac: str | None = None
    sysctls: tuple[Sysctl, ...] = field(default_factory=tuple)
    data_dir: str = DEFAULT_DATA_DIR


def parse_mtu(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | str) or not str(value).isdigit():
        raise bad_field(where, f"{value!r} is not an integer")
    mtu = int(value)
    if not 68 <= mtu <= 65535:
        raise bad_field(where, f"{mtu} is not in 68-65535")
    return mtu


def parse_mac(value: Any, where: str) -> str:
    mac = str(value).lower() if isinstance(value, str) else ""
    if not _MAC_RE.match(mac):
        raise bad_field(where, f"{value!r} is not a MAC address like 02:00:00:00:00:01")
    if int(mac[:2], 16) & 1:
        raise bad_field(where, f"{value!r} is a multicast address")
    return mac


def canonical_key(key: str) -> str:
    """``net/ipv4/conf/IFNAME/x`` and ``net.ipv4.conf.IFNAME.x`` are the same sysctl."""
    return key.replace("/", ".") if "/" in key else key


def parse_sysctl(key: Any, value: Any, ifname: str, where: str) -> Sysctl:
    """``where`` names the field in errors, e.g. ``sysctl['net.core.somaxconn']``."""
    if not isinstance(key, str) or not key:
        raise bad_field(where, "sysctl keys must be non-empty strings")
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise bad_field(where, f"{value!r} is not a string or integer")
    parts = key.split("/") if "/" in key else key.split(".")
    if parts[0] != "net":
        raise bad_field(where, "only net.* sysctls belong to the pod's namespace")
    for part in parts:
        if not part or part in (".", ".."):
            raise bad_field(where, "empty or relative path component")
    resolved = tuple(ifname if p == IFNAME_PLACEHOLDER else p for p in parts)
    text = str(value)
    if "\n" in text or "\0" in text:
        raise bad_field(where, "value must be a single line")
    return Sysctl(canonical_key(key), resolved, text)


def _allowed(key: str, patterns: list[str]) -> bool:
    return any(fnmatch.fnmatchcase(key, canonical_key(p)) for p in patterns)


class TuningConfig(PluginConfig):
    """The conflist keys as a pydantic model, returned by the plugin's ``cni_config_model`` hook
    (``metacni validate`` lists every problem it finds, with its JSON path) and validated by
    :func:`load`, which uses the instance: the validators return the parsed values, so the
    keys are checked once, by the same ``parse_*`` functions the CNI_ARGS go through."""

    mtu: Annotated[int | None, BeforeValidator(lambda v: v if v is None else _checked(parse_mtu, v, "mtu"))] = None
    mac: Annotated[str | None, BeforeValidator(lambda v: v if v is None else _checked(parse_mac, v, "mac"))] = None
    sysctl: dict[str, Sysctl] = Field(default_factory=dict)
    allowedSysctls: list[str] = Field(default_factory=list)
    dataDir: Annotated[str, BeforeValidator(lambda v: v or DEFAULT_DATA_DIR)] = DEFAULT_DATA_DIR

    @field_validator("sysctl", mode="before")
    @classmethod
    def _sysctl(cls, value: Any) -> Any:
        if not isinstance(value, dict):
            return value  # pydantic refuses it: "Input should be a valid dictionary"
        return {key: _checked(parse_sysctl, key, item, IFNAME_PLACEHOLDER, repr(key)) for key, item in value.items()}


def _checked(parse: Any, *args: Any) -> Any:
    """``parse(*args)``, its CNIError as the ValueError pydantic reports under the field's path."""
    try:
        return parse(*args)
    except CNIError as exc:
        raise ValueError(exc.details) from None


def data_dir(request: Request) -> str:
    """Where DEL and GC find the records: the one key they need, checked by the same model."""
    return validate_config(TuningConfig, {"dataDir": request.config.get("dataDir")}, request.network_name,
                           "tuning-py config").dataDir


def load(request: Request) -> Tuning:
    """The validated config (:class:`TuningConfig`: code 7 naming the JSON path and network),
    then CNI_ARGS and runtimeConfig, which override it (code 7 naming the source)."""
    keys = validate_config(TuningConfig, request.config, request.network_name, "tuning-py config")
    mtu, mac = keys.mtu, keys.mac
    sysctls = {s.key: s.on(request.ifname) for s in keys.sysctl.values()}

    if "MTU" in request.args:
        mtu = parse_mtu(request.args["MTU"], "CNI_ARGS MTU")
    if "MAC" in request.args:
        mac = parse_mac(request.args["MAC"], "CNI_ARGS MAC")
    for name, value in request.args.items():
        if not name.startswith(ARGS_SYSCTL_PREFIX):
            continue
        item = parse_sysctl(name[len(ARGS_SYSCTL_PREFIX):], value, request.ifname, f"CNI_ARGS {name}")
        if not _allowed(item.key, keys.allowedSysctls):
            raise bad_field(f"CNI_ARGS {name}", f"sysctl {item.key!r} is not in allowedSysctls")
        sysctls[item.key] = item

    runtime_mac = request.runtime_config.get("mac")
    if runtime_mac:
        mac = parse_mac(runtime_mac, "runtimeConfig.mac")
    return Tuning(mtu=mtu, mac=mac, sysctls=tuple(sysctls.values()), data_dir=keys.dataDir)
