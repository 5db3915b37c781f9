"""One place that runs a plugin: in-process when its type is registered, exec'd otherwise.

Whichever way a plugin runs, it sees the same contract: its config in its negotiated
version, ``prevResult`` converted into that version's family, and its result converted
back to that version before it is handed on.
"""

from __future__ import annotations

import json
from logging import getLogger
from typing import TYPE_CHECKING

from metacni.spec import versions
from metacni.spec.errors import CNIError, Code
from metacni.spec.results import Result, convert, parse_result

from .execplugin import DEFAULT_TIMEOUT, decode_output, exec_plugin, find_plugin
from .registry import Registry
from .request import ADD, CHECK, GC, STATUS, VERBS, Invocation, Request

if TYPE_CHECKING:
    from typing import Any

log = getLogger(__name__)


class Invoker:
    def __init__(self, registry: Registry, *, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.registry = registry
        self.timeout = timeout

    def invoke(self, plugin_type: str, config: dict[str, Any], inv: Invocation,
               prev_result: Result | None = None) -> Result | None:
        """Run ``plugin_type`` for ``inv.command``; ADD returns the result, other verbs None.

        ``prev_result``, when given, overrides any ``prevResult`` key in ``config``.
        """
        if inv.command not in VERBS:
            raise CNIError(Code.INVALID_ENVIRONMENT, "unknown CNI_COMMAND", f"unknown CNI_COMMAND: {inv.command}")
        if self.registry.has(plugin_type):
            return self._in_process(plugin_type, config, inv, prev_result)
        return self._exec(plugin_type, config, inv, prev_result)

    # ------------------------------------------------------------------ in-process
    def _in_process(self, plugin_type: str, config: dict[str, Any], inv: Invocation,
                    prev_result: Result | None) -> Result | None:
        version = versions.normalize(config.get("cniVersion"))
        info = self.registry.info(plugin_type)
        if version not in info.versions:
            raise CNIError(Code.INCOMPATIBLE_VERSION, "incompatible CNI versions",
                           f"plugin {plugin_type!r} supports {list(info.versions)}, config {config.get('name')!r} "
                           f"asks for {version!r}")
        check_verb_allowed(inv.command, version)
        if inv.command in (GC, STATUS) and not self.registry.implements(plugin_type, _hook(inv.command)):
            return None
        if prev_result is None and config.get("prevResult") is not None:
            prev_result = parse_result(config["prevResult"], None)
        if prev_result is not None:
            prev_result = convert(prev_result, version)
        plugin_config = {k: v for k, v in config.items() if k != "prevResult"}
        sent_runtime_config = plugin_config.get("runtimeConfig")
        if sent_runtime_config is not None:
            plugin_config["runtimeConfig"] = _declared_only(sent_runtime_config, info.capabilities)
        request = Request(invocation=inv, config=plugin_config, prev_result=prev_result, invoker=self,
                          delegated_runtime_config=sent_runtime_config)
        try:
            out = self.registry.call(plugin_type, inv.command, request)
        except CNIError:
            raise
        except (Exception, SystemExit) as exc:  # a plugin's sys.exit() must not end the engine
            log.exception("plugin %s %s failed (network %s, container %s, ifname %s)", plugin_type, inv.command,
                          config.get("name"), inv.container_id, inv.ifname)
            raise CNIError(Code.INTERNAL, f"plugin {plugin_type!r} failed",
                           f"{inv.command} on network {config.get('name')!r}: {type(exc).__name__}: {exc}") from exc
        if inv.command != ADD:
            return None
        if out is None:
            out = prev_result
        if out is None:
            raise CNIError(Code.INTERNAL, f"plugin {plugin_type!r} returned no result",
                           f"ADD on network {config.get('name')!r}")
        if isinstance(out, dict):
            out = parse_result(out, None)
        if not isinstance(out, Result):
            raise CNIError(Code.INTERNAL, f"plugin {plugin_type!r} returned an invalid result",
                           f"ADD on network {config.get('name')!r}: {type(out).__name__} is not a Result")
        return convert(out, version)

    # ------------------------------------------------------------------ exec
    def _exec(self, plugin_type: str, config: dict[str, Any], inv: Invocation,
              prev_result: Result | None) -> Result | None:
        path = find_plugin(plugin_type, inv.cni_path)
        stdin_config = dict(config)
        if prev_result is not None:
            stdin_config["prevResult"] = prev_result.to_wire()
        out = exec_plugin(path, json.dumps(stdin_config).encode(), inv.to_env(), timeout=self.timeout)
        if inv.command != ADD:
            return None
        data = decode_output(plugin_type, out)
        version = versions.normalize(config.get("cniVersion"))
        result = parse_result(data, None) if data.get("cniVersion") else parse_result(data, version)
        return convert(result, version)


def _hook(verb: str) -> str:
    return {"GC": "cni_gc", "STATUS": "cni_status"}[verb]


def check_verb_allowed(command: str, version: str) -> None:
    """The version gates skel applies: CHECK needs 0.4.0, GC and STATUS need 1.1.0."""
    if command == CHECK and not versions.at_least(version, "0.4.0"):
        raise CNIError(Code.INCOMPATIBLE_VERSION, "config version does not allow CHECK",
                       f"cniVersion {version} is below 0.4.0")
    if command in (GC, STATUS) and not versions.at_least(version, "1.1.0"):
        raise CNIError(Code.INCOMPATIBLE_VERSION, f"config version does not allow {command}",
                       f"cniVersion {version} is below 1.1.0")


def _declared_only(runtime_config: Any, capabilities: frozenset[str]) -> dict[str, Any]:
    if not isinstance(runtime_config, dict):
        return {}
    wanted = {c.lower() for c in capabilities}
    return {k: v for k, v in runtime_config.items() if k.lower() in wanted}
