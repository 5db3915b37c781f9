"""Identifier rules from the spec and skel: container ids, network names, interface names."""

from __future__ import annotations

import re

from .errors import CNIError, Code

_ID_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.\-]*$")
IFNAMSIZ = 16


def container_id_problem(value: str) -> str | None:
    if not value:
        return "must not be empty"
    if not _ID_RE.match(value):
        return "must start with an alphanumeric and contain only alphanumerics, '_', '.' or '-'"
    return None


def network_name_problem(value: str) -> str | None:
    """Same rule as container ids; it also rules out '/' and '..' so a name is a safe file name."""
    if not isinstance(value, str) or not value:
        return "must be a non-empty string"
    if not _ID_RE.match(value):
        return "must start with an alphanumeric and contain only alphanumerics, '_', '.' or '-'"
    return None


def ifname_problem(value: str) -> str | None:
    if not value:
        return "must not be empty"
    if len(value.encode()) >= IFNAMSIZ:
        return f"is {len(value.encode())} bytes, longer than the kernel's limit of {IFNAMSIZ - 1}"
    if value in (".", ".."):
        return "must not be '.' or '..'"
    for ch in value:
        if ch in "/:" or ch.isspace():
            return f"must not contain {ch!r}"
    return None


def check_container_id(value: str) -> None:
    problem = container_id_problem(value)
    if problem:
        raise CNIError(Code.INVALID_ENVIRONMENT, "invalid CNI_CONTAINERID", f"container id {value!r} {problem}")


def check_network_name(value: str) -> None:
    problem = network_name_problem(value)
    if problem:
        raise CNIError(Code.INVALID_CONFIG, "invalid network name", f"name {value!r} {problem}")


def check_ifname(value: str, field: str = "CNI_IFNAME") -> None:
    problem = ifname_problem(value)
    if problem:
        raise CNIError(Code.INVALID_ENVIRONMENT, f"invalid {field}", f"interface name {value!r} {problem}")
