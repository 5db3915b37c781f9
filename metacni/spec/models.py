"""Plugin config models (pydantic v2): the base class and how their errors are reported.

A plugin declares the JSON object it reads from stdin as a :class:`PluginConfig` subclass (the
``ipam`` section as its own model) and returns the class from the ``cni_config_model`` hook.
Two uses, one contract:

- :func:`model_problems` lists **every** problem of one object, each with its JSON path
  (``$.plugins[0].ipam.ranges[0][0].subnet``); ``metacni validate`` prints them.
- :func:`validate_config` parses one object for a CNI call and returns the validated instance,
  which the plugin's verbs use as is (no second look at the raw dict); the first problem
  becomes a CNI error with code 7 (invalid config) naming the JSON path and the network, or
  code 2 when every problem is a valid key whose feature the plugin does not implement
  (raised by a validator as :func:`unsupported`).

Keys a model does not declare are allowed (the spec passes unknown keys through).
:class:`ReferenceConfig` reads JSON ``null`` as "the key's default", as Go's decoder does.
"""

from __future__ import annotations

from typing import Any, ClassVar, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError, model_validator
from pydantic_core import PydanticCustomError

from .check import DICT, LIST, REQUIRED, json_path
from .errors import CNIError, Code

M = TypeVar("M", bound=BaseModel)


class PluginConfig(BaseModel):
    """Base of plugin config models: JSON key names as written (use ``alias`` for camelCase),
    unknown keys kept, values not coerced between JSON types (``"1"`` is not an int)."""

    model_config = ConfigDict(extra="allow", strict=True, populate_by_name=True, frozen=True)


#: the error type of :func:`unsupported`
UNSUPPORTED = "unsupported_field"


def unsupported(what: str, why: str) -> PydanticCustomError:
    """What a validator raises for a valid key whose feature the plugin does not implement
    ("``what`` is not supported yet: ``why``"): :func:`validate_config` makes it CNI error 2
    (unless an invalid value is found too), ``metacni validate`` lists it."""
    return PydanticCustomError(UNSUPPORTED, "{what} is not supported yet: {why}", {"what": what, "why": why})


class IPAMSection(BaseModel):
    """Base of ``ipam`` section models: ``type`` plus whatever the IPAM plugin declares."""

    model_config = ConfigDict(extra="allow", strict=True, populate_by_name=True, frozen=True)

    type: str = ""


class _GoNulls(BaseModel):
    """``null`` leaves a key at its default, as Go's JSON decoder does (see :class:`ReferenceConfig`)."""

    #: JSON names of the fields whose default is not ``None`` (computed per subclass)
    null_means_default: ClassVar[frozenset[str]] = frozenset()

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        cls.null_means_default = frozenset(
            field.alias or name for name, field in cls.model_fields.items()
            if not field.is_required() and (field.default_factory is not None or field.default is not None))

    @model_validator(mode="before")
    @classmethod
    def _nulls(cls, data: Any) -> Any:
        if isinstance(data, dict) and None in data.values():
            return {k: v for k, v in data.items() if v is not None or k not in cls.null_means_default}
        return data


class ReferenceConfig(_GoNulls, PluginConfig):
    """Base of the models of reference (Go) plugins' keys: ``null`` leaves a key at its
    default, as Go's JSON decoder does, so a field declares its real type and default
    (``hairpin: bool = Field(False, alias="hairpinMode")``) and ``"hairpinMode": null`` reads
    as ``False``. Fields are read by their JSON name (the alias) only."""

    model_config = ConfigDict(populate_by_name=False)


class ReferenceIPAM(_GoNulls, IPAMSection):
    """:class:`ReferenceConfig` for an ``ipam`` section."""

    model_config = ConfigDict(populate_by_name=False)


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
    """``data`` as ``model``, or a CNI error naming the first bad field's JSON path, the
    network, and how many more problems ``metacni validate`` would list: code 7 for the first
    invalid value, code 2 when every problem is an :func:`unsupported` feature."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        invalid = [err for err in exc.errors() if err["type"] != UNSUPPORTED]
        found = errors_of(exc)
        path = json_path(_loc(tuple((invalid or exc.errors())[0]["loc"])))
        reason = dict(found)[path]
        more = f" (and {len(found) - 1} more problem(s))" if len(found) > 1 else ""
        code, title = (Code.INVALID_CONFIG, f"invalid {what}") if invalid else \
            (Code.UNSUPPORTED_FIELD, f"unsupported {what} field")
        raise CNIError(code, title, f"network {network!r}: {path}: {reason}{more}") from None
