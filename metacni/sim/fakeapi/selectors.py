"""Label and field selectors, parsed once per request and applied to every candidate object.

Field selectors are restricted to the labels the real apiserver supports for each resource, so code
that would get a 400 from a real cluster gets one here too.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from .errors import bad_request
from .resources import JSON, ResourceType

Predicate = Callable[[JSON], bool]

_KEY = r"[A-Za-z0-9][-A-Za-z0-9_./]*"
_VALUE = r"[-A-Za-z0-9_.]*"
_SET_RE = re.compile(rf"^(?P<key>{_KEY})\s+(?P<op>in|notin)\s+\((?P<values>[^)]*)\)$")
_EQ_RE = re.compile(rf"^(?P<key>{_KEY})\s*(?P<op>==|=|!=)\s*(?P<value>{_VALUE})$")
_EXISTS_RE = re.compile(rf"^(?P<neg>!?)\s*(?P<key>{_KEY})$")


def _split_top_level(text: str) -> list[str]:
    """Split on commas that are not inside ``in (a,b)`` parentheses."""
    parts: list[str] = []
    depth = 0
    current: list[str] = []
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append("".join(current).strip())
            current = []
        else:
            current.append(ch)
    parts.append("".join(current).strip())
    return [p for p in parts if p]


def _label_requirement(req: str) -> Callable[[Mapping[str, str]], bool]:
    if m := _SET_RE.match(req):
        key, values = m["key"], {v.strip() for v in m["values"].split(",") if v.strip()}
        if m["op"] == "in":
            return lambda labels: labels.get(key) in values
        return lambda labels: labels.get(key) not in values
    if m := _EQ_RE.match(req):
        key, value = m["key"], m["value"]
        if m["op"] == "!=":
            return lambda labels: labels.get(key) != value
        return lambda labels: labels.get(key) == value
    if m := _EXISTS_RE.match(req):
        key, negated = m["key"], bool(m["neg"])
        return lambda labels: (key in labels) != negated
    raise bad_request(f"unable to parse requirement: {req!r}")


def label_predicate(selector: str | None) -> Predicate:
    """Equality (``=``, ``==``, ``!=``), set (``in``, ``notin``) and existence (``k``, ``!k``)."""
    if not selector:
        return lambda obj: True
    reqs = [_label_requirement(r) for r in _split_top_level(selector)]

    def matches(obj: JSON) -> bool:
        labels = (obj.get("metadata") or {}).get("labels") or {}
        return all(req(labels) for req in reqs)

    return matches


def field_value(obj: JSON, path: str) -> str:
    """The string form the apiserver compares for a field label; absent fields compare as ``""``."""
    node: Any = obj
    for part in path.split("."):
        if not isinstance(node, dict):
            return ""
        node = node.get(part)
    if node is None:
        return ""
    if isinstance(node, bool):
        return "true" if node else "false"
    return str(node)


def field_predicate(rt: ResourceType, selector: str | None) -> Predicate:
    """``path=value``, ``path==value`` and ``path!=value`` terms joined by commas."""
    if not selector:
        return lambda obj: True
    terms: list[tuple[str, bool, str]] = []
    for term in _split_top_level(selector):
        m = re.match(r"^(?P<path>[^!=]+?)\s*(?P<op>==|=|!=)\s*(?P<value>.*)$", term)
        if not m:
            raise bad_request(f"invalid selector: {selector!r}; can't understand {term!r}")
        path = m["path"].strip()
        if path not in rt.field_labels:
            raise bad_request(f'field label not supported: {path}')
        terms.append((path, m["op"] != "!=", m["value"].strip()))

    def matches(obj: JSON) -> bool:
        return all((field_value(obj, path) == value) == equal for path, equal, value in terms)

    return matches


def selector_predicate(rt: ResourceType, namespace: str | None, label_selector: str | None,
                       field_selector: str | None) -> Predicate:
    """One predicate for namespace scope plus both selectors; raises 400 on a bad selector."""
    by_label = label_predicate(label_selector)
    by_field = field_predicate(rt, field_selector)

    def matches(obj: JSON) -> bool:
        if namespace is not None and (obj.get("metadata") or {}).get("namespace") != namespace:
            return False
        return by_label(obj) and by_field(obj)

    return matches
