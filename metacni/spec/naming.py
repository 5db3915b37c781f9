"""Identifier rules from the spec and skel: container ids, network names, interface names.

Each is matched on the whole string (``fullmatch``: ``$`` alone lets a trailing newline
through). Names end up in file names, so lengths are capped to keep every path component
metacni or a reference plugin derives from them under NAME_MAX (255 bytes). The longest is
the temporary file of an atomic result-cache write, ``.<network>-<containerID>-<ifname>.<12 hex>``
(libcni's ``<network>-<containerID>-<ifname>`` plus :func:`metacni.engine.cache.atomic_write`'s
affixes): 1 + 96 + 1 + 128 + 1 + 15 + 1 + 12 = 255. Kubernetes runtimes use 64-character ids.
"""

from __future__ import annotations

import re

from .errors import CNIError, Code

_ID_RE = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.\-]*")
IFNAMSIZ = 16
NAME_MAX = 255
MAX_CONTAINER_ID = 128
#: NAME_MAX minus the longest affixes around a network name (see the module docstring)
MAX_NETWORK_NAME = NAME_MAX - len(".--.") - MAX_CONTAINER_ID - (IFNAMSIZ - 1) - 12
_CHARS = "must start with an alphanumeric and contain only alphanumerics, '_', '.' or '-'"


def container_id_problem(value: str) -> str | None:
    return _id_problem(value, "must not be empty", MAX_CONTAINER_ID, "")


def network_name_problem(value: str) -> str | None:
    """Same rule as container ids; it also rules out '/' and '..' so a name is a safe file name."""
    return _id_problem(value, "must be a non-empty string", MAX_NETWORK_NAME,
                       f" (cache and lease file names derived from it must stay under {NAME_MAX} bytes)")


def _id_problem(value: str, empty: str, limit: int, why_limit: str) -> str | None:
    """The id rule: ``empty`` for a non-string or empty value, then at most ``limit`` characters
    (``why_limit`` ends that message), then only the characters of ``_ID_RE``."""
    if not isinstance(value, str) or not value:
        return empty
    if len(value) > limit:
        return f"is {len(value)} characters long, more than {limit}{why_limit}"
    if not _ID_RE.fullmatch(value):
        return _CHARS
    return None


def ifname_problem(value: str) -> str | None:
    if not isinstance(value, str) or not value:
        return "must not be empty"
    if len(value.encode()) >= IFNAMSIZ:
        return f"is {len(value.encode())} bytes, longer than the kernel's limit of {IFNAMSIZ - 1}"
    return _ifname_chars_problem(value)


def _ifname_chars_problem(value: str) -> str | None:
    if not value:
        return "must not be empty"
    if value in (".", ".."):
        return "must not be '.' or '..'"
    for ch in value:
        if ch in "/:" or ch.isspace():
            return f"must not contain {ch!r}"
    if not value.isprintable():  # a NUL truncates the name in netlink and in paths
        return "must not contain control or invisible characters"
    return None


def over_long_only(container_id: str, ifname: str) -> str | None:
    """Why an attachment's ids break only metacni's length caps (the spec's characters are
    fine), or None. ADD refuses such ids before any plugin runs, so nothing can exist under
    them: a DEL of one has nothing to free and succeeds (CNI: DEL of what is absent is not an
    error), rather than failing the runtime's teardown, or a pending-DEL replay, forever."""
    if not (isinstance(container_id, str) and _ID_RE.fullmatch(container_id)) or not isinstance(ifname, str):
        return None
    if _ifname_chars_problem(ifname) is not None:
        return None
    if len(container_id) > MAX_CONTAINER_ID:
        return f"container id is {len(container_id)} characters long, more than {MAX_CONTAINER_ID}"
    if len(ifname.encode()) >= IFNAMSIZ:
        return f"interface name is {len(ifname.encode())} bytes, longer than the kernel's limit of {IFNAMSIZ - 1}"
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
