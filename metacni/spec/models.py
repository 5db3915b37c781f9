"""Plugin config models (pydantic v2): the base class and how their errors are reported.

A plugin declares the JSON object it reads from stdin as a :class:`PluginConfig` subclass (the
``ipam`` section as its own model) and returns the class from the ``cni_config_model`` hook.
Two uses, one contract:

- :func:`model_problems` lists **every** problem of one object, each with its JSON path
  (``$.plugins[0].ipam.ranges[0][0].subnet``); ``metacni validate`` prints them.
- :func:`validate_config` parses one object for a CNI call; the first problem becomes a
  CNI error with code 7 (invalid config) naming the JSON path and the network.

Keys a model does not declare are allowed (the spec passes unknown keys through), and the
model never replaces the raw dict a plugin is called with: it only checks and types it.
"""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from .check import DICT, LIST, REQUIRED, json_path
from .errors import CNIError, Code

M = TypeVar("M", bound=BaseModel)


class PluginConfig(BaseModel):
    """Base of plugin config models: JSON key names as written (use ``alias`` for camelCase),
    unknown keys kept, values not coerced between JSON types (``"1"`` is not an int)."""

    model_config = ConfigDict(extra="allow", strict=True, populate_by_name=True, frozen=True)


class IPAMSection(BaseModel):
    """Base of ``ipam`` section models: ``type`` plus whatever the IPAM plugin declares."""

    model_config = ConfigDict(extra="allow", strict=True, populate_by_name=True, frozen=True)

    type: str = ""


_MEMBER_TAGS = frozenset({"str", "int", "float", "bool", "none", "list", "dict"})


def _loc(loc: tuple[int | str, ...]) -> tuple[int | str, ...]:
    """pydantic's error location without the tags it inserts for union members and validators
    (``int``, ``list[str]``, ``function-after[...]``)."""
    return tuple(part for part in loc if isinstance(part, int) or not (
        part in _MEMBER_TAGS or "[" in part or part.startswith("function-")))


# pydantic error types whose wording the hand-written checks (metacni.spec.check) shorten
REASONS = {"model_type": DICT, "dict_type": DICT, "model_attributes_type": DICT, "list_type": LIST,
           "missing": REQUIRED}


def _reason(error: Any) -> str:
    return REASONS.get(error["type"]) or str(error["msg"]).removeprefix("Value error, ")


def errors_of(exc: ValidationError, root: str = "$") -> list[tuple[str, str]]:
    """(JSON path, reason) for every error of a failed validation, in document order; the
    members of a union that all failed become one problem ("... or ...")."""
    merged: dict[str, list[str]] = {}
    for err in exc.errors():
        reasons = merged.setdefault(json_path(_loc(tuple(err["loc"])), root), [])
        if _reason(err) not in reasons:
            reasons.append(_reason(err))
    return [(path, " or ".join(reasons)) for path, reasons in merged.items()]


def model_problems(model: type[BaseModel], data: Any, root: str = "$") -> list[tuple[str, str]]:
    """Every problem ``model`` finds in ``data``; empty when it is valid."""
    try:
        model.model_validate(data)
    except ValidationError as exc:
        return errors_of(exc, root)
    return []


def validate_config(model: type[M], data: Any, network: str, what: str = "config") -> M:
    """``data`` as ``model``, or a CNI error (code 7) naming the first bad field's JSON path,
    the network, and how many more problems ``metacni validate`` would list."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        found = errors_of(exc)
        path, reason = found[0]
        more = f" (and {len(found) - 1} more problem(s))" if len(found) > 1 else ""
        raise CNIError(Code.INVALID_CONFIG, f"invalid {what}",
                       f"network {network!r}: {path}: {reason}{more}") from None
