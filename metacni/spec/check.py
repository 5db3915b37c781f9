"""Type checks for the spec's JSON objects, with errors that name the field by JSON path.

:class:`Invalid` is the one error of the wire types (:mod:`.results` raises it from its pydantic
models). The ``want_*`` checks collect every problem of a net conf or conf list for
``metacni validate`` (:mod:`.config`); the messages keep pydantic's wording ("Input should be a
valid integer"), so both read alike.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

STR = "Input should be a valid string"
INT = "Input should be a valid integer"
BOOL = "Input should be a valid boolean"
LIST = "Input should be a valid list"
DICT = "Input should be a valid dictionary"
REQUIRED = "Field required"


Loc = tuple[str | int, ...]


def json_path(loc: Loc, root: str = "$") -> str:
    """``("plugins", 1, "mtu")`` -> ``$.plugins[1].mtu``."""
    out = root
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out


class Invalid(ValueError):
    """A value that does not fit the schema. ``loc`` is relative to the object being read;
    readers of nested objects prefix it with :meth:`under` as the error travels up."""

    def __init__(self, loc: Loc, reason: str) -> None:
        super().__init__(f"{json_path(loc)}: {reason}")
        self.loc = loc
        self.reason = reason

    @property
    def path(self) -> str:
        return json_path(self.loc)

    def where(self, root: str) -> str:
        """The path below ``root``, e.g. ``where("ipam.routes[0]")`` -> ``ipam.routes[0].dst``."""
        return json_path(self.loc, root)

    def under(self, *prefix: str | int) -> Invalid:
        return Invalid((*prefix, *self.loc), self.reason)


def strict_str(value: Any, key: str | int) -> str:
    if not isinstance(value, str):
        raise Invalid((key,), STR)
    return value


def opt_str(value: Any, key: str | int) -> str | None:
    return None if value is None else strict_str(value, key)


def lax_int(value: Any, key: str | int) -> int:
    """Lax integers, as pydantic's default mode read results: ints (and bools), integral
    floats and decimal strings."""
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        if value.is_integer():
            return int(value)
        raise Invalid((key,), f"{INT}, got a number with a fractional part")
    if isinstance(value, str):
        text = value.strip()
        digits = text[1:] if text[:1] in ("+", "-") else text
        if digits.isdecimal():  # what the pattern [+-]?\d+ accepts, without compiling one per process
            return int(text)
        raise Invalid((key,), f"{INT}, unable to parse string as an integer")
    raise Invalid((key,), INT)


def opt_int(value: Any, key: str | int) -> int | None:
    return None if value is None else lax_int(value, key)


def opt_str_list(value: Any, key: str) -> list[str] | None:
    if value is None:
        return None
    if not isinstance(value, list | tuple):
        raise Invalid((key,), LIST)
    for i, item in enumerate(value):
        if not isinstance(item, str):
            raise Invalid((key, i), STR)
    return list(value)


# ---------------------------------------------------------------- collecting checks (configs)
# These append every problem instead of raising the first: ``metacni validate`` lists them all.


def want_str(data: Mapping[str, Any], key: str, loc: Loc, out: list[tuple[Loc, str]], *,
             required: bool = False) -> bool:
    """Check ``data[key]`` is a string (or absent/null unless ``required``); True if it is a string."""
    if key not in data:
        if required:
            out.append(((*loc, key), REQUIRED))
        return False
    value = data[key]
    if isinstance(value, str):
        return True
    if value is not None or required:
        out.append(((*loc, key), STR))
    return False


def want_strict(data: Mapping[str, Any], key: str, kind: type, reason: str, loc: Loc,
                out: list[tuple[Loc, str]]) -> None:
    """Optional strict scalar: bool must be a JSON boolean, int a JSON integer (not a boolean)."""
    value = data.get(key)
    if value is None:
        return
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        out.append(((*loc, key), reason))


def want_str_list(data: Mapping[str, Any], key: str, loc: Loc, out: list[tuple[Loc, str]]) -> bool:
    """Optional list of strings; True if present and every item is a string."""
    value = data.get(key)
    if value is None:
        return False
    if not isinstance(value, list):
        out.append(((*loc, key), LIST))
        return False
    bad = [i for i, item in enumerate(value) if not isinstance(item, str)]
    out.extend(((*loc, key, i), STR) for i in bad)
    return not bad
