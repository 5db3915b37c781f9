"""``metacni.spec.record``: the dataclass behaviour the pod path relies on, from one ``exec``
compiled on first use."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given
from hypothesis import strategies as st

from metacni.spec.record import COMPILE_AFTER, FrozenInstanceError, field, fields, record, replace


@record(frozen=True)
class Point:
    """A frozen record with a plain default, a factory default and a property."""

    x: int
    label: str = "p"
    tags: list[str] = field(default_factory=list)

    @property
    def double(self) -> int:
        return self.x * 2


@record()
class Counter:
    name: str
    counts: dict[str, int] = field(default_factory=dict)
    total: int = 0

    def __post_init__(self) -> None:
        self.total = sum(self.counts.values())


@dataclasses.dataclass(frozen=True)
class DataPoint:
    x: int
    label: str = "p"
    tags: list[str] = dataclasses.field(default_factory=list)


def test_frozen_record_behaves_like_a_frozen_dataclass():
    p, d = Point(1, tags=["a"]), DataPoint(1, tags=["a"])
    assert repr(p) == repr(d).replace("DataPoint", "Point")
    assert p == Point(1, "p", ["a"]) and p != Point(2) and p != d
    assert Point(1).tags is not Point(1).tags and Point.label == "p"
    assert p.double == 2
    assert fields(p) == fields(Point) == tuple(f.name for f in dataclasses.fields(DataPoint))
    assert Point.__match_args__ == DataPoint.__match_args__
    with pytest.raises(FrozenInstanceError, match="cannot assign to field 'x'"):
        p.x = 3  # type: ignore[misc]
    with pytest.raises(AttributeError):
        del p.label
    hashable = Point(1, "q", ())  # type: ignore[arg-type]
    assert hash(hashable) == hash(Point(1, "q", ())) and len({hashable, Point(1, "q", ())}) == 1  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        Point()  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        Point(1, nope=2)  # type: ignore[call-arg]


def test_mutable_record_runs_post_init_and_is_unhashable():
    c = Counter("c", {"a": 2, "b": 3})
    assert c.total == 5 and c == Counter("c", {"a": 2, "b": 3}) and c != Counter("d")
    c.total = 7
    assert c.total == 7 and Counter.__hash__ is None
    with pytest.raises(TypeError):
        hash(c)


def test_replace_reinitialises_and_rejects_unknown_fields():
    p = Point(1, tags=["a"])
    q = replace(p, label="z")
    assert (q.x, q.label, q.tags) == (1, "z", ["a"]) and p.label == "p"
    assert replace(Counter("c", {"a": 1}), counts={"a": 4}).total == 4  # __post_init__ ran again
    with pytest.raises(TypeError, match="no field"):
        replace(p, nope=1)


def test_definition_errors_are_reported():
    with pytest.raises(TypeError, match="non-default argument 'b' follows default argument"):
        @record()
        class Bad:
            a: int = 0
            b: int  # type: ignore[misc]
    with pytest.raises(ValueError):
        field(default=1, default_factory=list)


def _pair() -> tuple[type, type]:
    """Two identical record classes: one left binding, one made to compile its ``__init__``."""
    made = []
    for _ in range(2):
        @record()
        class Rec:
            a: int
            b: int
            c: int = 3
            d: list[int] = field(default_factory=list)

            def __post_init__(self) -> None:
                self.d = [*self.d, self.a]

        made.append(Rec)
    for _ in range(COMPILE_AFTER):
        made[1](0, 0)
    return made[0], made[1]


def test_init_compiles_only_for_a_busy_class():
    binding, compiled = _pair()
    assert compiled.__init__.__code__.co_varnames[:5] == ("self", "a", "b", "c", "d")
    assert binding.__init__.__code__.co_varnames[:3] == ("self", "args", "kwargs")
    assert compiled.__init__.__qualname__ == binding.__init__.__qualname__ == "_pair.<locals>.Rec.__init__"


@given(st.lists(st.integers(), max_size=5),
       st.dictionaries(st.sampled_from(["a", "b", "c", "d", "e"]), st.integers(), max_size=4))
def test_binding_init_matches_the_compiled_one(args: list[int], kwargs: dict[str, int]):
    """Fields, defaults, factories, __post_init__ and CPython's own TypeError messages."""
    if "d" in kwargs:
        kwargs["d"] = [kwargs["d"]]  # type: ignore[assignment]
    outcomes = []
    for cls in _pair():
        try:
            obj = cls(*args, **kwargs)
            outcomes.append(("ok", obj.a, obj.b, obj.c, obj.d))
        except TypeError as exc:
            outcomes.append(("error", str(exc)))
    assert outcomes[0] == outcomes[1]
