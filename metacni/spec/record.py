"""``@record()``: the dataclass subset the pod path uses, with one ``exec`` per class, when used.

Why not ``dataclasses``: a standalone CNI call is a fresh interpreter that builds every class
on its import path. Importing ``dataclasses`` pulls in ``inspect`` (``ast``, ``dis``,
``tokenize``): ~16 ms, and each ``@dataclass`` compiles its generated methods one ``exec`` at a
time: ~0.5-1 ms per class, 29 classes per ADD (``-X importtime`` of a standalone ADD, busy 2-core
machine). A record class compiles its ``__init__`` (~0.2 ms) when first instantiated, and a
standalone call instantiates only some of the classes it imports.

What is kept: ``__init__`` in field order with defaults and ``field(default_factory=...)``,
``__post_init__``, ``__repr__``, ``__eq__`` (same class only), ``__match_args__``; with
``frozen=True`` also ``__hash__`` and assignment raising :class:`FrozenInstanceError`
(an ``AttributeError``, like ``dataclasses``'); :func:`replace`. Not supported: inheritance of
fields, ``order``, ``ClassVar``/``InitVar`` fields, keyword-only fields.
"""

from __future__ import annotations

from collections.abc import Callable
from operator import attrgetter

TYPE_CHECKING = False  # typing costs ~5 ms per standalone CNI call; mypy treats this name as True
if TYPE_CHECKING:
    from typing import Any, TypeVar, dataclass_transform

    T = TypeVar("T")
else:
    def dataclass_transform(**_: object) -> Callable[[Any], Any]:
        return lambda decorator: decorator

_MISSING: Any = type("_Missing", (), {"__repr__": lambda self: "<missing>"})()


class FrozenInstanceError(AttributeError):
    """Assignment to a field of a frozen record."""


class _Factory:
    __slots__ = ("make",)

    def __init__(self, make: Callable[[], Any]) -> None:
        self.make = make


def field(*, default: Any = _MISSING, default_factory: Callable[[], Any] | None = None) -> Any:
    """A field's default (``default``) or a callable making a fresh one per instance."""
    if default_factory is not None:
        if default is not _MISSING:
            raise ValueError("cannot specify both default and default_factory")
        return _Factory(default_factory)
    return default


@dataclass_transform(field_specifiers=(field,))
def record(*, frozen: bool = False) -> Callable[[type[T]], type[T]]:
    """Class decorator: generated ``__init__``/``__repr__``/``__eq__`` (and ``__hash__`` when frozen)."""
    return lambda cls: _build(cls, frozen)


def _build(cls: Any, frozen: bool) -> Any:
    names = tuple(n for n in cls.__dict__.get("__annotations__", {}) if not n.startswith("__"))
    env: dict[str, Any] = {"_MISSING": _MISSING}
    params, values = [], []
    for name in names:
        default = cls.__dict__.get(name, _MISSING)
        if isinstance(default, _Factory):
            env[f"_f_{name}"] = default.make
            delattr(cls, name)
            params.append(f"{name}=_MISSING")
            values.append(f"{name!r}: _f_{name}() if {name} is _MISSING else {name}")
            continue
        if default is not _MISSING:
            env[f"_d_{name}"] = default
            params.append(f"{name}=_d_{name}")
        elif params and "=" in params[-1]:
            raise TypeError(f"non-default argument {name!r} follows default argument")
        else:
            params.append(name)
        values.append(f"{name!r}: {name}")
    # Only __init__ is generated (its signature is the class's); the other methods are shared.
    src = f"def __init__(self, {', '.join(params)}):\n  self.__dict__.update({{{', '.join(values)}}})\n"
    if "__post_init__" in cls.__dict__:
        src += "  self.__post_init__()\n"
    if "__init__" not in cls.__dict__:
        cls.__init__ = _compile_on_first_use(cls, src, env)
    own_hash = cls.__dict__.get("__hash__") is not None
    methods: dict[str, Any] = {"__repr__": _repr, "__eq__": _eq}
    if frozen:
        methods.update(__setattr__=_frozen_setattr, __delattr__=_frozen_delattr)
    for method, fn in methods.items():
        if method not in cls.__dict__:
            setattr(cls, method, fn)
    if not own_hash:
        cls.__hash__ = _hash if frozen else None  # as dataclass(eq=True): mutable records are unhashable
    cls.__match_args__ = names  # type: ignore[misc]  # mypy: "Cannot assign to __match_args__"
    cls.__record_fields__ = names
    cls.__record_key__ = attrgetter(*names) if names else lambda _self: ()
    return cls


def _compile_on_first_use(cls: Any, src: str, env: dict[str, Any]) -> Callable[..., None]:
    """An ``__init__`` that compiles the class's real one on its first call and puts it in its place.

    Compiling is ~0.2 ms per class on a busy node, and a standalone CNI call imports ~30 record
    classes but builds instances of only some of them. Instances pay nothing after the first."""

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        exec(src, env)  # noqa: S102 - generated from the class's own field names
        init = env["__init__"]
        init.__qualname__ = f"{cls.__qualname__}.__init__"
        cls.__init__ = init
        init(self, *args, **kwargs)

    __init__.__qualname__ = f"{cls.__qualname__}.__init__"
    return __init__


def _repr(self: Any) -> str:
    shown = ", ".join(f"{n}={getattr(self, n)!r}" for n in self.__record_fields__)
    return f"{type(self).__qualname__}({shown})"


def _eq(self: Any, other: Any) -> Any:
    if other.__class__ is not self.__class__:
        return NotImplemented
    key = self.__record_key__
    return key(self) == key(other)


def _hash(self: Any) -> int:
    return hash(self.__record_key__(self))


def _frozen_setattr(self: Any, name: str, value: Any) -> None:
    raise FrozenInstanceError(f"cannot assign to field {name!r}")


def _frozen_delattr(self: Any, name: str) -> None:
    raise FrozenInstanceError(f"cannot delete field {name!r}")


def fields(obj: Any) -> tuple[str, ...]:
    """The field names of a record class or instance, in order."""
    return tuple(obj.__record_fields__)


def replace(obj: T, /, **changes: Any) -> T:
    """A copy of record ``obj`` with ``changes`` (fields re-initialised, as ``dataclasses.replace``)."""
    unknown = set(changes).difference(fields(obj))
    if unknown:
        raise TypeError(f"{type(obj).__name__} has no field(s) {', '.join(sorted(unknown))}")
    return type(obj)(**{n: changes.get(n, getattr(obj, n)) for n in fields(obj)})
