"""A NAD's keys must be spelled as the tenant checks read them (docs/design/1410).

Go's ``encoding/json``, which every reference plugin decodes its config with, matches object keys
case-insensitively and lets the last of two matches win: ``"Device": "eth1"`` is host-device's
``device``. The checks (:mod:`.trust`, :mod:`.hostifs`, :mod:`.hostroutes`) read exact keys, so
:func:`check_key_spelling` refuses (code 7) what would let them read one thing and the plugin
another: two keys of one object, at any depth, that differ only in case; and a key the checks
read, in any other spelling, in the objects they read it from.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .hostroutes import host_local_ranges
from .refusal import json_path, plugin_objects, refused

#: Keys the checks read in a plugin object (or a conf's top), and those libcni sets; the caller
#: adds the node-only keys it strips (:data:`.trust.CHECKED_PLUGIN_KEYS`).
PLUGIN_KEYS = frozenset({
    "type", "name", "cniVersion", "plugins", "ipam", "runtimeConfig", "capabilities", "args", "prevResult",
    "master", "mode", "device", "hwaddr", "kernelpath", "deviceID", "pciBusID", "bridge", "ipMasq",
    "markMasqBit", "externalSetMarkChain", "dataDir", "resolvConf", "daemonSocketPath",
})
#: ... in an ``ipam`` object
IPAM_KEYS = frozenset({"type", "ranges", "addresses", "dataDir", "resolvConf", "daemonSocketPath", "routes"})
#: ... in a host-local range (or a legacy single-range ``ipam``) or a static address
RANGE_KEYS = frozenset({"subnet", "rangeStart", "rangeEnd", "gateway", "address"})
#: ... in a plugin's ``runtimeConfig``
RUNTIME_KEYS = frozenset({"deviceID"})


def _folded(keys: frozenset[str]) -> dict[str, str]:
    return {k.casefold(): k for k in keys}


_IPAM, _RANGE, _RUNTIME = _folded(IPAM_KEYS), _folded(RANGE_KEYS), _folded(RUNTIME_KEYS)


def check_key_spelling(data: Mapping[str, Any], where: str, plugin_keys: frozenset[str] = PLUGIN_KEYS) -> None:
    """Code 7 (naming ``where`` and the key's JSON path) when an object anywhere in ``data`` (a
    NAD's conf or conflist) has two keys that differ only in case, or a key of ``plugin_keys``
    (in a plugin object), of :data:`IPAM_KEYS`, :data:`RANGE_KEYS` or :data:`RUNTIME_KEYS` (in
    the objects of those names) is spelled with other cases."""
    stack: list[tuple[str, Any]] = [("", data)]
    while stack:  # safejson bounds the depth of tenant documents
        path, value = stack.pop()
        if isinstance(value, list):
            stack += [(f"{path}[{i}]", v) for i, v in enumerate(value)]
        elif isinstance(value, Mapping):
            seen: dict[str, str] = {}
            for key in value:
                folded = str(key).casefold()
                if folded in seen:
                    raise refused(f"{where}: {json_path(path, seen[folded])!r} and {json_path(path, str(key))!r} "
                                  "differ only in case; a plugin written in Go reads them as one key (the last "
                                  "wins): keep one")
                seen[folded] = str(key)
            stack += [(json_path(path, str(k)), v) for k, v in value.items()]
    folded_plugin = _folded(plugin_keys)
    objects = plugin_objects(data)
    if not objects or objects[0][1] is not data:  # a conflist: its top too
        objects = [("", data), *objects]
    for prefix, obj in objects:
        if not isinstance(obj, Mapping):
            continue
        _spelled(obj, prefix, folded_plugin, where)
        runtime = obj.get("runtimeConfig")
        if isinstance(runtime, Mapping):
            _spelled(runtime, json_path(prefix, "runtimeConfig"), _RUNTIME, where)
        ipam = obj.get("ipam")
        if not isinstance(ipam, Mapping):
            continue
        at = json_path(prefix, "ipam")
        _spelled(ipam, at, _IPAM, where)
        for sub, r in host_local_ranges(ipam):
            _spelled(r, json_path(at, sub), _RANGE, where)
        addresses = ipam.get("addresses")
        for i, a in enumerate(addresses if isinstance(addresses, list) else []):
            if isinstance(a, Mapping):
                _spelled(a, f"{at}.addresses[{i}]", _RANGE, where)


def _spelled(obj: Mapping[str, Any], path: str, canonical: Mapping[str, str], where: str) -> None:
    for key in obj:
        want = canonical.get(str(key).casefold())
        if want is not None and key != want:
            raise refused(f"{where}: {json_path(path, str(key))!r}: write it {want!r}; metacni checks {want!r} against "
                          "the node's policy, and a plugin written in Go reads any spelling of it as that key")
