"""``@record()``: the dataclass subset the pod path uses, with one ``exec`` per busy class.

Why not ``dataclasses``: a standalone CNI call is a fresh interpreter that builds every class
on its import path. Importing ``dataclasses`` pulls in ``inspect`` (``ast``, ``dis``,
``tokenize``): ~16 ms, and each ``@dataclass`` compiles its generated methods one ``exec`` at a
time: ~0.5-1 ms per class, 29 classes per ADD (``-X importtime`` of a standalone ADD, busy 2-core
machine). A record class binds arguments with a shared ``__init__`` and compiles its own only
once it has built :data:`COMPILE_AFTER` instances, which a standalone call seldom does.

What is kept: ``__init__`` in field order with defaults and ``field(default_factory=...)``,
``__post_init__``, ``__repr__``, ``__eq__`` (same class only), ``__match_args__``; with
``frozen=True`` also ``__hash__`` and assignment raising :class:`FrozenInstanceError`
(an ``AttributeError``, like ``dataclasses``'); :func:`replace`. Not supported: inheritance of
fields, ``order``, ``ClassVar``/``InitVar`` fields, keyword-only fields.
"""

from __future__ import annotations

from collections.abc import Callable
from operator import attrgetter
from typing import TYPE_CHECKING

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


#: Instances a class builds through the shared binding ``__init__`` before it compiles its own: a
#: standalone CNI call builds a few of each class (compiling is ~0.2-0.6 ms per class in a fresh
#: process), a daemon builds thousands (the compiled one is ~3x faster per instance).
COMPILE_AFTER = 16


def _build(cls: Any, frozen: bool) -> Any:
    names = tuple(n for n in cls.__dict__.get("__annotations__", {}) if not n.startswith("__"))
    env: dict[str, Any] = {"_MISSING": _MISSING}
    defaults: dict[str, Any] = {}
    factories: dict[str, Callable[[], Any]] = {}
    params, values = [], []
    for name in names:
        default = cls.__dict__.get(name, _MISSING)
        if isinstance(default, _Factory):
            env[f"_f_{name}"] = factories[name] = default.make
            delattr(cls, name)
            params.append(f"{name}=_MISSING")
            values.append(f"{name!r}: _f_{name}() if {name} is _MISSING else {name}")
            continue
        if default is not _MISSING:
            env[f"_d_{name}"] = defaults[name] = default
            params.append(f"{name}=_d_{name}")
        elif params and "=" in params[-1]:
            raise TypeError(f"non-default argument {name!r} follows default argument")
        else:
            params.append(name)
        values.append(f"{name!r}: {name}")
    # Only __init__ is generated (its signature is the class's); the other methods are shared.
    post_init = "__post_init__" in cls.__dict__
    src = f"def __init__(self, {', '.join(params)}):\n  self.__dict__.update({{{', '.join(values)}}})\n"
    if post_init:
        src += "  self.__post_init__()\n"
    if "__init__" not in cls.__dict__:
        cls.__init__ = _binding_init(cls, _Binder(cls.__qualname__, names, defaults, factories, post_init), src, env)
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


class _Binder:
    """Binds constructor arguments to fields as the generated ``__init__`` would, without compiling."""

    __slots__ = ("qualname", "names", "defaults", "factories", "post_init")

    def __init__(self, qualname: str, names: tuple[str, ...], defaults: dict[str, Any],
                 factories: dict[str, Callable[[], Any]], post_init: bool) -> None:
        self.qualname, self.names, self.defaults = qualname, names, defaults
        self.factories, self.post_init = factories, post_init

    def bind(self, obj: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        where = f"{self.qualname}.__init__()"
        given = dict(zip(self.names, args, strict=False))  # extra positionals are refused below
        for key, value in kwargs.items():  # CPython's order of checks: keywords, surplus, missing
            if key not in self.names:
                raise TypeError(f"{where} got an unexpected keyword argument {key!r}")
            if key in given:
                raise TypeError(f"{where} got multiple values for argument {key!r}")
            given[key] = value
        if len(args) > len(self.names):
            most = len(self.names) + 1
            least = most - len(self.defaults) - len(self.factories)
            takes = f"from {least} to {most}" if least < most else str(most)
            raise TypeError(f"{where} takes {takes} positional arguments but {len(args) + 1} were given")
        fields, missing = obj.__dict__, []
        for name in self.names:
            if name in given:
                fields[name] = given[name]
            elif name in self.defaults:
                fields[name] = self.defaults[name]
            elif name in self.factories:
                fields[name] = self.factories[name]()
            else:
                missing.append(repr(name))
        if missing:
            plural = "s" if len(missing) > 1 else ""
            shown = (missing[0] if len(missing) == 1 else " and ".join(missing) if len(missing) == 2
                     else f"{', '.join(missing[:-1])}, and {missing[-1]}")  # CPython's wording
            raise TypeError(f"{where} missing {len(missing)} required positional argument{plural}: {shown}")
        if self.post_init:
            obj.__post_init__()


def _binding_init(cls: Any, binder: _Binder, src: str, env: dict[str, Any]) -> Callable[..., None]:
    """The class's ``__init__`` until :data:`COMPILE_AFTER` instances: then it compiles the real one
    and puts it in its place."""
    built = 0

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        nonlocal built
        built += 1
        if built >= COMPILE_AFTER and cls.__dict__.get("__init__") is __init__:
            exec(src, env)  # noqa: S102 - generated from the class's own field names
            compiled = env["__init__"]
            compiled.__qualname__ = f"{cls.__qualname__}.__init__"
            cls.__init__ = compiled
        binder.bind(self, args, kwargs)

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
