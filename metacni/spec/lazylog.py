"""Module loggers that import ``logging`` only when a record may be emitted.

Why: ``import logging`` (with ``traceback``, ``linecache``, ``tokenize``, ``textwrap``,
``string``) is ~4-7 ms of every standalone CNI call (``-X importtime``, 2-core machine), and
a successful call logs nothing at its default level (WARNING). Until something imports
``logging``, a record below every level configured so far (:func:`enable`) is dropped here;
anything else imports ``logging``, first runs the configurations deferred with
:func:`when_imported` (in order), then goes to the real logger of the same name, whose own
level and handlers decide as usual. Once ``logging`` is imported (the daemon, the CLI, tests)
every call goes straight to the real logger.

Every module on the standalone path logs through these (``log = getLogger(__name__)``):
a module logging through ``logging`` directly would bypass the deferred configuration.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

TYPE_CHECKING = False  # typing costs ~5 ms per standalone CNI call; mypy treats this name as True
if TYPE_CHECKING:
    from typing import Any

DEBUG, INFO, WARNING, ERROR, CRITICAL = 10, 20, 30, 40, 50
LEVELS = {"CRITICAL": CRITICAL, "FATAL": CRITICAL, "ERROR": ERROR, "WARNING": WARNING, "WARN": WARNING,
          "INFO": INFO, "DEBUG": DEBUG, "NOTSET": 0}

_floor = WARNING  # the lowest level any configuration so far may let through
_deferred: list[Callable[[Any], None]] = []


def enable(level: int) -> None:
    """Records at ``level`` and above may be emitted (a configuration is about to allow them)."""
    global _floor
    _floor = min(_floor, level)


def when_imported(configure: Callable[[Any], None]) -> None:
    """Run ``configure(logging)`` before the first record goes out (now, if it is imported)."""
    _deferred.append(configure)
    if "logging" in sys.modules:
        logging_module()


def logging_module() -> Any:
    """``logging``, imported and configured."""
    import logging

    while _deferred:
        _deferred.pop(0)(logging)
    return logging


class Logger:
    """The level methods of ``logging.Logger``, forwarded when a record may be emitted."""

    __slots__ = ("name", "_real")

    def __init__(self, name: str) -> None:
        self.name = name
        self._real: Any = None

    def _logger(self) -> Any:
        if self._real is None or _deferred:
            self._real = logging_module().getLogger(self.name)
        return self._real

    def _log(self, level: int, msg: object, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        if level >= _floor or "logging" in sys.modules:
            kwargs["stacklevel"] = kwargs.get("stacklevel", 1) + 2  # the caller, not this module
            self._logger().log(level, msg, *args, **kwargs)

    def isEnabledFor(self, level: int) -> bool:  # noqa: N802 - logging's name
        return (level >= _floor or "logging" in sys.modules) and bool(self._logger().isEnabledFor(level))

    def debug(self, msg: object, *args: Any, **kwargs: Any) -> None:
        self._log(DEBUG, msg, args, kwargs)

    def info(self, msg: object, *args: Any, **kwargs: Any) -> None:
        self._log(INFO, msg, args, kwargs)

    def warning(self, msg: object, *args: Any, **kwargs: Any) -> None:
        self._log(WARNING, msg, args, kwargs)

    def error(self, msg: object, *args: Any, **kwargs: Any) -> None:
        self._log(ERROR, msg, args, kwargs)

    def exception(self, msg: object, *args: Any, exc_info: Any = True, **kwargs: Any) -> None:
        self._log(ERROR, msg, args, dict(kwargs, exc_info=exc_info))

    def critical(self, msg: object, *args: Any, **kwargs: Any) -> None:
        self._log(CRITICAL, msg, args, kwargs)

    def log(self, level: int, msg: object, *args: Any, **kwargs: Any) -> None:
        self._log(level, msg, args, kwargs)


def getLogger(name: str) -> Logger:  # noqa: N802 - logging's name
    return Logger(name)
