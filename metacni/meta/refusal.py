"""How a tenant check says no: code 7 "refused by node policy", the details naming the JSON
path of the field (:func:`json_path`; the plugin objects a check walks: :func:`plugin_objects`),
the network and the setting that would allow it. Shared
by every check of tenant input (:mod:`.trust`, :mod:`.keyspelling`, :mod:`.hostifs`,
:mod:`.hostroutes`, :mod:`.selection_policy`, :mod:`.networks`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from metacni.spec.errors import CNIError, Code

REFUSED = "refused by node policy"


def refused(details: str) -> CNIError:
    """The refusal to raise (code 7); ``details`` says what, where and which setting."""
    return CNIError(Code.INVALID_CONFIG, REFUSED, details)


def json_path(prefix: str, key: str) -> str:
    """``key`` under ``prefix`` (a JSON path like ``plugins[1].ipam``; "" for the top)."""
    return f"{prefix}.{key}" if prefix else key


def plugin_objects(data: Mapping[str, Any]) -> list[tuple[str, Any]]:
    """(JSON path prefix, plugin object) of a conf or conflist: its ``plugins``, or the conf itself."""
    plugins = data.get("plugins")
    if isinstance(plugins, list):
        return [(f"plugins[{i}]", p) for i, p in enumerate(plugins)]
    return [("", data)]
