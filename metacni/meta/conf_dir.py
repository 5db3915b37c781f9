"""The node's conf dir as a source of networks: which files may serve as one (never metacni's
own output, by name or because it runs ``metacni``: Multus #1108), the first of them (the
primary, resolved on every ADD), one by CNI name, and a file as a network list.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path, PurePath
from typing import Any

from metacni.spec.config import NetworkList, conf_files, conflist_from_file_bytes, extension, network_list_from_bytes
from metacni.spec.errors import CNIError, Code

from .trust import META_TYPE


def _plugin_types(data: Any) -> list[str]:
    if not isinstance(data, dict):
        return []
    plugins: list[Any] = data["plugins"] if isinstance(data.get("plugins"), list) else [data]
    return [str(p.get("type", "")) for p in plugins if isinstance(p, dict)]


def _ours_by_name(path: str | os.PathLike[str], own_file: str) -> bool:
    name = PurePath(path).name
    return name.startswith("00-metacni") or bool(own_file and name == PurePath(own_file).name)


def is_meta_config(path: str | os.PathLike[str], own_file: str = "") -> bool:
    """Our own output (by name or because it runs ``metacni``): never a primary (Multus #1108)."""
    if _ours_by_name(path, own_file):
        return True
    try:
        data = json.loads(Path(path).read_bytes())
    except (OSError, ValueError):
        return False
    return META_TYPE in _plugin_types(data)


def _candidates(conf_dir: str | os.PathLike[str], own_file: str) -> Iterator[tuple[Path, bytes | None, Any]]:
    """Config files that may serve as a network, lexical order, ours excluded, each read once:
    (path, its bytes or None when unreadable, its JSON or None when it is not JSON)."""
    for path in conf_files(conf_dir):
        if _ours_by_name(path, own_file):
            continue
        try:
            raw = path.read_bytes()
        except OSError:
            yield path, None, None  # as is_meta_config: an unreadable file is not ours
            continue
        try:
            data = json.loads(raw)
        except ValueError:
            data = None
        if META_TYPE not in _plugin_types(data):
            yield path, raw, data


def candidate_files(conf_dir: str | os.PathLike[str], own_file: str = "") -> list[Path]:
    """Config files of ``conf_dir`` that may serve as a network, lexical order, ours excluded."""
    return [path for path, _, _ in _candidates(conf_dir, own_file)]


def load_file(path: str | os.PathLike[str]) -> NetworkList:
    """A .conflist, or a .conf/.json wrapped as a list (a conflist stored as .conf is accepted)."""
    return _network(path, _read(Path(path)))


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise CNIError(Code.IO_FAILURE, "cannot read network configuration", f"{path}: {exc.strerror}") from None


def _network(path: str | os.PathLike[str], raw: bytes) -> NetworkList:
    """The network in ``raw``, read from ``path`` (its ``source``, as given)."""
    source = os.fspath(path)
    if extension(source) == ".conflist":  # CNI 1.1 / libcni 1.3: plugins of <dir>/<name>/*.conf appended
        return conflist_from_file_bytes(raw, source)
    return network_list_from_bytes(raw, source, is_list=None)


def first_candidate(conf_dir: str | os.PathLike[str], own_file: str = "") -> NetworkList | None:
    """``load_file(candidate_files(...)[0])`` reading no file after the first candidate: the
    primary network is resolved on every ADD."""
    for path, raw, _ in _candidates(conf_dir, own_file):
        # an unreadable first candidate is an error (re-read for its reason), a broken one too
        return _network(path, _read(path) if raw is None else raw)
    return None


def find_file_by_name(conf_dir: str | os.PathLike[str], name: str, own_file: str = "") -> NetworkList | None:
    """The first file (lexical) whose CNI ``name`` is ``name``; Multus' scan for NAD-less names."""
    for path, raw, data in _candidates(conf_dir, own_file):
        if raw is not None and isinstance(data, dict) and data.get("name") == name:
            return _network(path, raw)
    return None
