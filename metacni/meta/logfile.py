"""The meta plugin's log destinations: Multus' ``logFile``, ``logToStderr`` and ``logOptions``.

Multus rotates ``logFile`` with lumberjack; ``logOptions`` are lumberjack's: ``maxSize``
(megabytes before a rotation, default 100), ``maxAge`` (days a rotated file is kept, default 5),
``maxBackups`` (rotated files kept, default 5) and ``compress`` (gzip rotated files, default
true); 0 for ``maxAge``/``maxBackups`` means "no limit", as in lumberjack. Rotated files are
named as lumberjack names them: ``<stem>-<UTC time>.<ext>`` (``.gz`` appended when compressed).
``logToStderr`` (default true) false keeps metacni's records off stderr.

Rotation is not coordinated between processes (neither is lumberjack's): standalone CNI calls
that rotate at the same moment may each rotate once.
"""

from __future__ import annotations

import gzip
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from metacni.spec.errors import CNIError, Code

if TYPE_CHECKING:
    import logging
    from collections.abc import Mapping

MEGABYTE = 1024 * 1024
_STAMP = "%Y-%m-%dT%H-%M-%S"


def _bad(key: str, reason: str) -> CNIError:
    return CNIError(Code.INVALID_CONFIG, "invalid metacni configuration", f"{key}: {reason}")


@dataclass(frozen=True)
class LogOptions:
    """lumberjack's settings, Multus' defaults."""

    max_size_mb: int = 100
    max_age_days: int = 5
    max_backups: int = 5
    compress: bool = True

    @classmethod
    def from_conf(cls, conf: Mapping[str, Any]) -> LogOptions:
        """``conf["logOptions"]``; a wrong type is code 7 naming ``logOptions.<key>``."""
        raw = conf.get("logOptions")
        if raw is None:
            return cls()
        if not isinstance(raw, dict):
            raise _bad("logOptions", f"must be an object, got {type(raw).__name__}")
        values: dict[str, Any] = {}
        for key, attr in (("maxSize", "max_size_mb"), ("maxAge", "max_age_days"), ("maxBackups", "max_backups")):
            value = raw.get(key)
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise _bad(f"logOptions.{key}", f"must be a non-negative integer, got {value!r}")
            values[attr] = value
        if raw.get("compress") is not None:
            if not isinstance(raw["compress"], bool):
                raise _bad("logOptions.compress", f"must be a boolean, got {raw['compress']!r}")
            values["compress"] = raw["compress"]
        return cls(**values)


def log_to_stderr(conf: Mapping[str, Any]) -> bool:
    """``logToStderr`` (default true, as Multus); a non-boolean is code 7."""
    value = conf.get("logToStderr", True)
    if not isinstance(value, bool):
        raise _bad("logToStderr", f"must be a boolean, got {value!r}")
    return value


def backups(path: str | os.PathLike[str]) -> list[Path]:
    """The rotated files of ``path``, oldest first (by the time in their name)."""
    path = Path(path).absolute()
    prefix, ext = f"{path.stem}-", path.suffix
    out = []
    for entry in path.parent.iterdir():
        name = entry.name
        plain = name[:-3] if name.endswith(".gz") else name
        if plain.startswith(prefix) and plain.endswith(ext) and plain != path.name:
            stamp = plain[len(prefix):len(plain) - len(ext) if ext else None]
            try:
                time.strptime(stamp.split(".")[0], _STAMP)
            except ValueError:
                continue
            out.append(entry)
    return sorted(out, key=lambda p: p.name[len(prefix):])


def rotated_name(path: str | os.PathLike[str], now: float) -> Path:
    """``<stem>-<UTC time>.<millis><ext>`` beside ``path``, as lumberjack names a backup."""
    path = Path(path)
    millis = int(now * 1000) % 1000
    return path.with_name(f"{path.stem}-{time.strftime(_STAMP, time.gmtime(now))}.{millis:03d}{path.suffix}")


def _with_gz(path: Path, tail: str = ".gz") -> Path:
    return path.with_name(path.name + tail)


def prune(path: str | os.PathLike[str], options: LogOptions, now: float) -> None:
    """Remove rotated files beyond ``maxBackups`` (oldest first) or older than ``maxAge`` days."""
    files = backups(path)
    doomed = set(files[:-options.max_backups] if options.max_backups else [])
    if options.max_age_days:
        cutoff = now - options.max_age_days * 86400
        doomed.update(f for f in files if f.stat().st_mtime < cutoff)
    for name in doomed:
        name.unlink(missing_ok=True)


def _compress(name: Path) -> None:
    tmp = _with_gz(name, ".gz.tmp")
    with name.open("rb") as src, gzip.open(tmp, "wb") as dst:
        shutil.copyfileobj(src, dst)
    tmp.replace(_with_gz(name))
    name.unlink()


def file_handler(path: str | os.PathLike[str], options: LogOptions) -> logging.Handler:
    """A handler appending to ``path`` that rotates it as lumberjack would."""
    import logging.handlers

    class LumberjackHandler(logging.handlers.RotatingFileHandler):
        def doRollover(self) -> None:  # noqa: N802 (logging's name)
            if self.stream:
                self.stream.close()
                self.stream = None
            now = time.time()
            target = rotated_name(self.baseFilename, now)
            while target.exists() or _with_gz(target).exists():  # same millisecond
                now += 0.001
                target = rotated_name(self.baseFilename, now)
            current = Path(self.baseFilename)
            if current.exists():
                current.replace(target)
                if options.compress:
                    _compress(target)
            prune(self.baseFilename, options, now)
            self.stream = self._open()

    return LumberjackHandler(path, maxBytes=(options.max_size_mb or 100) * MEGABYTE)  # 0: lumberjack's 100


def keep_off_stderr(logger_name: str = "metacni") -> None:
    """``logToStderr: false``: the logger's records stop at its own handlers (a file, or none)."""
    import logging

    logger = logging.getLogger(logger_name)
    logger.propagate = False
    if not logger.handlers:
        logger.addHandler(logging.NullHandler())
