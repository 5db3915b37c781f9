"""libcni's result cache, byte-compatible, so cnitool and metacni can DEL each other's work.

Layout: ``<cacheDir>/results/<network>-<containerID>-<ifname>``, dir 0700, file 0600, JSON
with ``kind: cniCacheV1`` and the raw config bytes in base64. Writes are atomic (temp file, then
rename) so a crash never leaves a truncated entry.

An entry that decodes but has the wrong shape (``"result": 5``, ``"capabilityArgs": "x"``, a
list at the top) is corrupt: it is moved to ``<cacheDir>/corrupt/`` (:func:`quarantine`, kept
for the operator) and DEL and GC go on without it, so it can never fail them forever. A file
that does not decode is skipped with a warning but left in place: libcni writes its entries
non-atomically, so it may be another runtime's entry caught mid-write. Entries are not fsynced: they describe
network namespaces, which do not survive a reboot either, and an fsync per write, several times per pod ADD,
would dominate its time (figures: bench/README.md).
"""

from __future__ import annotations

import binascii
import json
import os
import time
from dataclasses import dataclass, field
from logging import getLogger
from pathlib import Path
from typing import TYPE_CHECKING

from metacni.spec.args import CniArgs
from metacni.spec.results import Result, parse_result
from metacni.spec.safejson import loads

if TYPE_CHECKING:
    from typing import Any

DEFAULT_CACHE_DIR = Path("/var/lib/cni")
CACHE_KIND = "cniCacheV1"
log = getLogger(__name__)


def atomic_write(path: str | os.PathLike[str], data: bytes, mode: int = 0o600, dir_mode: int = 0o700,
                 durable: bool = True) -> None:
    """Write a temporary file and rename it over ``path``: readers see the old or the new file,
    never half of one, even if the writer is killed. ``durable`` also fsyncs the file and the
    directory so the new file survives a power loss (node config and binaries); state that
    dies with the node's namespaces (caches) skips it."""
    path = Path(path)
    parent = path.parent
    parent.mkdir(mode=dir_mode, parents=True, exist_ok=True)
    fd, tmp = _create_temp(parent, path.name)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            if durable:
                handle.flush()
                os.fsync(handle.fileno())
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if not durable:
        return
    dir_fd = os.open(parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def read_if_present(path: str | os.PathLike[str]) -> bytes | None:
    """The file's bytes, None when it does not exist; any other ``OSError`` is raised."""
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        return None


def _create_temp(parent: Path, name: str) -> tuple[int, Path]:
    """A new file ``.<name>.<random>`` in ``parent``, created exclusively, mode 0600: (fd, path)."""
    while True:
        tmp = parent / f".{name}.{os.urandom(6).hex()}"
        try:
            return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600), tmp
        except FileExistsError:
            continue


def quarantine(path: str | os.PathLike[str], corrupt_dir: str | os.PathLike[str] | None = None) -> Path:
    """Move a corrupt record aside into ``corrupt_dir`` (default: ``corrupt/`` beside it), named
    ``<name>.<unix time>``; returns the new path. Out of the way of the next ADD, DEL and GC."""
    path = Path(path)
    target_dir = Path(corrupt_dir) if corrupt_dir is not None else path.parent / "corrupt"
    target_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    return path.replace(target_dir / f"{path.name}.{int(time.time())}")


class CorruptEntry(ValueError):
    """A cache entry that decodes but is not a usable record."""


@dataclass
class CacheEntry:
    network_name: str
    container_id: str
    ifname: str
    config: bytes = b""
    netns: str = ""
    cni_args: list[tuple[str, str]] = field(default_factory=list)
    capability_args: dict[str, Any] = field(default_factory=dict)
    result: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "kind": CACHE_KIND,
            "containerId": self.container_id,
            "config": binascii.b2a_base64(self.config, newline=False).decode(),
            "ifName": self.ifname,
            "networkName": self.network_name,
        }
        if self.netns:
            out["netns"] = self.netns
        if self.cni_args:
            out["cniArgs"] = [[k, v] for k, v in self.cni_args]
        if self.capability_args:
            out["capabilityArgs"] = self.capability_args
        if self.result:
            out["result"] = self.result
        return out

    def parsed_result(self) -> Result | None:
        return parse_result(self.result, None) if self.result else None

    @property
    def args(self) -> CniArgs:
        return CniArgs(self.cni_args)


class ResultCache:
    def __init__(self, cache_dir: str | os.PathLike[str] = DEFAULT_CACHE_DIR) -> None:
        self.cache_dir = Path(cache_dir)

    @property
    def results_dir(self) -> Path:
        return self.cache_dir / "results"

    def path(self, network: str, container_id: str, ifname: str) -> Path:
        return self.results_dir / f"{network}-{container_id}-{ifname}"

    def write(self, entry: CacheEntry) -> None:
        data = json.dumps(entry.to_json()).encode()
        atomic_write(self.path(entry.network_name, entry.container_id, entry.ifname), data, durable=False)

    @property
    def corrupt_dir(self) -> Path:
        return self.cache_dir / "corrupt"

    def read(self, network: str, container_id: str, ifname: str) -> CacheEntry | None:
        """The entry, or None when absent or unusable (a corrupt one is quarantined, an
        unreadable one logged): DEL goes on without a cached result rather than failing
        forever. A legacy bare result (pre-2019 libcni) is accepted."""
        path = self.path(network, container_id, ifname)
        try:
            raw = read_if_present(path)
        except OSError as exc:
            log.warning("cannot read cache file %s (%s); going on without it", path, exc)
            return None
        if raw is None:
            return None
        try:
            return _decode_entry(raw, network, container_id, ifname)
        except CorruptEntry as exc:
            self._quarantine(path, exc)
            return None

    def _quarantine(self, path: Path, why: Exception) -> None:
        try:
            moved = quarantine(path, self.corrupt_dir)
        except OSError as exc:
            log.error("corrupt cache file %s (%s) could not be moved aside: %s", path, why, exc)
            return
        log.error("corrupt cache file %s (%s): moved to %s; going on without it", path, why, moved)

    def delete(self, network: str, container_id: str, ifname: str) -> None:
        path = self.path(network, container_id, ifname)
        try:
            path.unlink(missing_ok=True)
        except OSError as exc:  # the attachment is gone already; a later GC retries the file
            log.warning("cannot remove cache file %s: %s", path, exc)

    def entries(self, network: str | None = None) -> list[CacheEntry]:
        """Every cniCacheV1 entry (of one network when given), in file-name order."""
        out: list[CacheEntry] = []
        try:
            paths = sorted(self.results_dir.iterdir())
        except FileNotFoundError:
            return out
        except OSError as exc:
            log.warning("cannot list cache dir %s: %s", self.results_dir, exc)
            return out
        for path in paths:
            if path.name.startswith("."):
                continue
            try:
                data = loads(path.read_bytes())
            except (OSError, ValueError):
                log.warning("ignoring unreadable cache file %s", path)
                continue
            try:
                if not isinstance(data, dict):
                    raise CorruptEntry(f"top level is a JSON {type(data).__name__}, not an object")
                if data.get("kind") != CACHE_KIND:
                    continue  # a legacy bare result, or another tool's kind: not ours to judge
                entry = _entry_from_json(data)
            except CorruptEntry as exc:
                self._quarantine(path, exc)
                continue
            if network is None or entry.network_name == network:
                out.append(entry)
        return out


def _decode_entry(raw: bytes, network: str, container_id: str, ifname: str) -> CacheEntry:
    """Raises :class:`CorruptEntry` for a decodable entry of the wrong shape; an undecodable
    file (perhaps mid-write by a non-atomic writer) is an entry without a result."""
    try:
        data = loads(raw)
    except ValueError:
        data = None
    else:
        if not isinstance(data, dict):
            raise CorruptEntry(f"top level is a JSON {type(data).__name__}, not an object")
    if isinstance(data, dict) and data.get("kind") == CACHE_KIND:
        return _entry_from_json(data)
    legacy = data if isinstance(data, dict) and "kind" not in data else None
    return CacheEntry(network_name=network, container_id=container_id, ifname=ifname, result=legacy)


REQUIRED: Any = object()


def typed(data: dict[str, Any], key: str, kind: type, default: Any = REQUIRED) -> Any:
    """``data[key]`` of a stored record when it has JSON type ``kind`` (a bool is not an int);
    a missing or null key is ``default``, or corrupt when there is none. CorruptEntry otherwise."""
    value = data.get(key)
    if value is None and default is not REQUIRED:
        return default
    if not isinstance(value, kind) or isinstance(value, bool) is not (kind is bool):
        raise CorruptEntry(f"{key!r} must be a JSON {kind.__name__}, got {type(value).__name__}")
    return value


def _entry_from_json(data: dict[str, Any]) -> CacheEntry:
    """A cniCacheV1 object as written by libcni or metacni; CorruptEntry on any wrong type."""
    try:
        config = binascii.a2b_base64(typed(data, "config", str, ""))
    except (ValueError, UnicodeEncodeError) as exc:  # binascii.Error is a ValueError
        raise CorruptEntry(f"'config' is not base64: {exc}") from None
    pairs = typed(data, "cniArgs", list, [])
    if not all(isinstance(p, list) and len(p) == 2 and all(isinstance(s, str) for s in p) for p in pairs):
        raise CorruptEntry("'cniArgs' is not a list of [key, value] string pairs")
    ifname = typed(data, "ifName", str, "")
    container_id = typed(data, "containerId", str, "")
    if not ifname or not container_id:
        raise CorruptEntry("'containerId' and 'ifName' are required")
    return CacheEntry(
        network_name=typed(data, "networkName", str, ""),
        container_id=container_id,
        ifname=ifname,
        config=config,
        netns=typed(data, "netns", str, ""),
        cni_args=[(k, v) for k, v in pairs],
        capability_args=dict(typed(data, "capabilityArgs", dict, {})),
        result=typed(data, "result", dict, None),
    )
