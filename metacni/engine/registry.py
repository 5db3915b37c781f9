"""The plugin registry: one pluggy manager fed by the ``metacni.plugins`` entry-point group.

Entry points are discovered by name at start-up but imported only when a config names
their type, so a standalone CNI call pays only for the plugins it runs. Two distributions
claiming the same type are a clash: reported at discovery and refused at use, never
resolved silently by load order.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from importlib import metadata
from typing import Any

import pluggy

from metacni.spec.errors import CNIError, Code

from . import hookspecs
from .request import PluginInfo

ENTRY_POINT_GROUP = "metacni.plugins"
log = logging.getLogger(__name__)

VERB_HOOKS = {"ADD": "cni_add", "DEL": "cni_del", "CHECK": "cni_check", "GC": "cni_gc", "STATUS": "cni_status"}


@dataclass(frozen=True)
class PluginSource:
    """Where a plugin type comes from, for ``metacni plugins`` and clash reports."""

    type: str
    module: str
    distribution: str
    version: str


class Registry:
    def __init__(self, *, discover: bool = True, disabled: frozenset[str] = frozenset()) -> None:
        self.pm = pluggy.PluginManager(hookspecs.PROJECT)
        self.pm.add_hookspecs(hookspecs)
        self.disabled = disabled
        self._entry_points: dict[str, list[tuple[metadata.EntryPoint, PluginSource]]] = {}
        self._callers: dict[tuple[str, str], Any] = {}
        self._lock = threading.RLock()
        self.clashes: list[str] = []
        if discover:
            self.discover()

    # ------------------------------------------------------------------ discovery
    def discover(self) -> None:
        for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
            dist = getattr(ep, "dist", None)
            source = PluginSource(
                type=ep.name,
                module=ep.value,
                distribution=getattr(dist, "name", "?") if dist else "?",
                version=getattr(dist, "version", "?") if dist else "?",
            )
            known = self._entry_points.setdefault(ep.name, [])
            if any(s.module == source.module for _, s in known):
                continue  # the same distribution seen twice (editable + site), not a clash
            known.append((ep, source))
        for name, eps in sorted(self._entry_points.items()):
            if len(eps) > 1:
                owners = ", ".join(f"{s.distribution} ({s.module})" for _, s in eps)
                msg = f"plugin type {name!r} is provided by more than one package: {owners}"
                self.clashes.append(msg)
                log.error("%s; the type is disabled until one is removed", msg)

    def register(self, plugin_type: str, plugin: object) -> None:
        """Register a plugin object directly (tests, embedding). Replaces nothing silently."""
        with self._lock:
            if self.pm.get_plugin(plugin_type) is not None or self._entry_points.get(plugin_type):
                raise CNIError(Code.INVALID_CONFIG, "plugin type already registered", plugin_type)
            self.pm.register(plugin, name=plugin_type)
            self._entry_points.setdefault(plugin_type, [])
            self._callers.clear()  # cached subset callers must not see the newcomer

    def types(self) -> list[str]:
        names = set(self._entry_points) | {n for n, _ in self.pm.list_name_plugin() if n}
        return sorted(n for n in names if n not in self.disabled)

    def sources(self) -> dict[str, list[PluginSource]]:
        return {name: [s for _, s in eps] for name, eps in self._entry_points.items()}

    def has(self, plugin_type: str) -> bool:
        if plugin_type in self.disabled:
            return False
        return plugin_type in self._entry_points or self.pm.get_plugin(plugin_type) is not None

    # ------------------------------------------------------------------ loading
    def get(self, plugin_type: str) -> object:
        with self._lock:
            plugin = self.pm.get_plugin(plugin_type)
            if plugin is not None:
                return plugin
            eps = self._entry_points.get(plugin_type) or []
            if len(eps) > 1:
                owners = ", ".join(s.distribution for _, s in eps)
                raise CNIError(Code.INVALID_CONFIG, "ambiguous plugin type",
                               f"type {plugin_type!r} is provided by {owners}; uninstall one of them")
            if not eps:
                raise CNIError(Code.INVALID_CONFIG, "unknown plugin type", f"type {plugin_type!r} is not registered")
            ep, source = eps[0]
            try:
                plugin = ep.load()
            except Exception as exc:
                log.error("loading plugin %s from %s failed: %s", plugin_type, source.module, exc)
                log.debug("traceback of the failed plugin load", exc_info=True)
                raise CNIError(Code.INTERNAL, f"plugin {plugin_type!r} failed to load",
                               f"{source.module}: {type(exc).__name__}: {exc}") from exc
            self.pm.register(plugin, name=plugin_type)
            self._callers.clear()  # cached subset callers must not see the newcomer
            return plugin

    def load_all(self) -> None:
        for name in self.types():
            if len(self._entry_points.get(name) or []) <= 1:
                self.get(name)

    def info(self, plugin_type: str) -> PluginInfo:
        """The plugin's declaration; a broken one is an error naming the plugin, not a default."""
        caller = self._caller(plugin_type, "cni_plugin_info")
        try:
            info = caller()
        except CNIError:
            raise
        except Exception as exc:
            log.exception("cni_plugin_info of plugin %s failed", plugin_type)
            raise CNIError(Code.INTERNAL, f"plugin {plugin_type!r} failed",
                           f"cni_plugin_info: {type(exc).__name__}: {exc}") from exc
        if info is None:
            return PluginInfo()
        if not isinstance(info, PluginInfo):
            raise CNIError(Code.INTERNAL, f"plugin {plugin_type!r} failed",
                           f"cni_plugin_info returned {type(info).__name__}, not PluginInfo")
        return info

    def implements(self, plugin_type: str, hook: str) -> bool:
        plugin = self.get(plugin_type)
        return any(impl.plugin is plugin for impl in getattr(self.pm.hook, hook).get_hookimpls())

    def _caller(self, plugin_type: str, hook: str) -> Any:
        key = (plugin_type, hook)
        caller = self._callers.get(key)
        if caller is None:
            plugin = self.get(plugin_type)
            with self._lock:
                others = [p for p in self.pm.get_plugins() if p is not plugin]
                caller = self.pm.subset_hook_caller(hook, remove_plugins=others)
                self._callers[key] = caller
        return caller

    def call(self, plugin_type: str, verb: str, request: Any) -> Any:
        """Call one plugin's hook for a verb; only that plugin's implementation runs."""
        return self._caller(plugin_type, VERB_HOOKS[verb])(request=request)

    def invalidate(self) -> None:
        with self._lock:
            self._callers.clear()
