"""JSON decoding for input metacni does not control: stdin, annotations, NADs, cache files.

:func:`loads` is ``json.loads`` whose every failure is a :class:`ValueError` with a message:

- invalid UTF-8 (``UnicodeDecodeError`` is already a ``ValueError``) and syntax errors;
- nesting deeper than :data:`MAX_DEPTH` (100000 ``[`` made the C decoder raise
  ``RecursionError``, which escaped every ``except ValueError`` and became code 999), and
  nesting deep enough to parse but to break later recursive code (conversion, ``json.dumps``);
- ``NaN``/``Infinity``/``-Infinity`` and numbers too large for a float (``1e999``): not JSON
  (RFC 8259), and Go's ``encoding/json`` refuses them, so a config libcni refuses is refused
  here too; integers longer than Python's conversion limit were a ``ValueError`` already.

Duplicate keys keep the last value, as Go's ``encoding/json`` (and so libcni) does.
Callers map the ``ValueError`` to their CNI code (6 for stdin, 7 for an annotation or NAD).
"""

from __future__ import annotations

import json
import math
from typing import Any

#: Deepest nesting accepted. CNI configs and results nest ~6 levels; 64 leaves room for a
#: plugin's own settings and stays far below the interpreter's recursion limit.
MAX_DEPTH = 64


def _constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number {text[:40]} is out of range")
    return value


def loads(data: str | bytes | bytearray) -> Any:
    """Decode ``data``; any problem is a ``ValueError`` naming it (see the module docstring)."""
    try:
        value = json.loads(data, parse_constant=_constant, parse_float=_float)
    except RecursionError:
        raise ValueError(f"nested deeper than {MAX_DEPTH} levels") from None
    if isinstance(value, dict | list) and _may_be_deep(data):
        _check_depth(value)
    return value


def _may_be_deep(data: str | bytes | bytearray) -> bool:
    """Cheap pre-check: fewer brackets than the limit cannot nest beyond it."""
    if isinstance(data, str):
        return data.count("[") + data.count("{") > MAX_DEPTH
    return data.count(b"[") + data.count(b"{") > MAX_DEPTH


def _check_depth(value: Any) -> None:
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise ValueError(f"nested deeper than {MAX_DEPTH} levels")
        children = item.values() if isinstance(item, dict) else item
        stack.extend((c, depth + 1) for c in children if isinstance(c, dict | list))
