"""The plugin registry: one pluggy manager fed by the ``metacni.plugins`` entry-point group.

Plugins are imported only when a config names their type. metacni's own types (:data:`IN_TREE`,
the entry points pyproject.toml declares; a test keeps them equal) resolve without scanning
other distributions; the entry-point scan runs once, the first time a type that is not in-tree,
a listing (:meth:`Registry.types`, :meth:`Registry.sources`) or the clash report
(:attr:`Registry.clashes`) is asked for: ``metacni plugins`` and the daemon at start
(``load_all``) always scan. Two distributions claiming the same type are a clash: reported at
discovery and refused at use, never resolved silently by load order. The one exception is a
third-party package claiming an in-tree type: a call that never scans (a standalone ADD of the
in-tree chain) runs metacni's own plugin; the daemon and ``metacni plugins`` report the clash.

Every plugin, in-tree or not, is registered with the plugin manager and called through it.
"""

from __future__ import annotations

import importlib
import threading
from dataclasses import dataclass
from importlib import metadata
from logging import getLogger
from typing import TYPE_CHECKING

import pluggy

from metacni.spec.errors import CNIError, Code

from . import hookspecs
from .markers import PROJECT
from .request import PluginInfo

if TYPE_CHECKING:
    from importlib.metadata import EntryPoint
    from typing import Any

ENTRY_POINT_GROUP = "metacni.plugins"
#: metacni's own entry points (pyproject.toml ``[project.entry-points."metacni.plugins"]``).
IN_TREE = {
    "bridge": "metacni_plugins.bridge.plugin",
    "host-local": "metacni_plugins.host_local.plugin",
    "portmap": "metacni_plugins.portmap.plugin",
    "masq": "metacni_plugins.masq.plugin",
    "forward": "metacni_plugins.forward.plugin",
    "metacni": "metacni.meta.plugin",
}
log = getLogger(__name__)

VERB_HOOKS = {"ADD": "cni_add", "DEL": "cni_del", "CHECK": "cni_check", "GC": "cni_gc", "STATUS": "cni_status"}


@dataclass(frozen=True)
class PluginSource:
    """Where a plugin type comes from, for ``metacni plugins`` and clash reports."""

    type: str
    module: str
    distribution: str
    version: str


class Registry:
    """Plugin types by name. ``discover=False``: only what :meth:`register` adds (tests, embedding)."""

    def __init__(self, *, discover: bool = True, disabled: frozenset[str] = frozenset()) -> None:
        self.pm = pluggy.PluginManager(PROJECT)
        self.pm.add_hookspecs(hookspecs)
        self.disabled = disabled
        self._entry_points: dict[str, list[tuple[EntryPoint, PluginSource]]] = {}
        self._callers: dict[tuple[str, str], Any] = {}
        self._lock = threading.RLock()
        self._clashes: list[str] = []
        self._in_tree = dict(IN_TREE) if discover else {}
        self._scanned = not discover

    def _registered(self, plugin_type: str) -> object | None:
        return self.pm.get_plugin(plugin_type)

    # ------------------------------------------------------------------ discovery
    @property
    def clashes(self) -> list[str]:
        """Types more than one distribution provides (scans the entry points if not done yet)."""
        self.discover()
        return self._clashes

    def discover(self) -> None:
        """Scan the ``metacni.plugins`` entry points of every installed distribution, once."""
        with self._lock:
            if self._scanned:
                return
            self._scanned = True
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
                    self._clashes.append(msg)
                    log.error("%s; the type is disabled until one is removed", msg)

    def register(self, plugin_type: str, plugin: object) -> None:
        """Register a plugin object directly (tests, embedding). Replaces nothing silently."""
        with self._lock:
            if plugin_type in self._in_tree:
                self.discover()  # an in-tree type: only taken if no distribution provides it
            if self._registered(plugin_type) is not None or self._entry_points.get(plugin_type):
                raise CNIError(Code.INVALID_CONFIG, "plugin type already registered", plugin_type)
            self.pm.register(plugin, name=plugin_type)
            self._entry_points.setdefault(plugin_type, [])
            self._callers.clear()  # cached subset callers must not see the newcomer

    def types(self) -> list[str]:
        self.discover()
        names = set(self._entry_points) | {n for n, _ in self.pm.list_name_plugin() if n}
        return sorted(n for n in names if n not in self.disabled)

    def sources(self) -> dict[str, list[PluginSource]]:
        self.discover()
        return {name: [s for _, s in eps] for name, eps in self._entry_points.items()}

    def has(self, plugin_type: str) -> bool:
        if plugin_type in self.disabled:
            return False
        if self._registered(plugin_type) is not None:
            return True
        if not self._scanned and plugin_type in self._in_tree:
            return True
        self.discover()
        return plugin_type in self._entry_points

    # ------------------------------------------------------------------ loading
    def get(self, plugin_type: str) -> object:
        with self._lock:
            plugin = self._registered(plugin_type)
            if plugin is not None:
                return plugin
            if not self._scanned and plugin_type in self._in_tree:
                return self._load(plugin_type, self._in_tree[plugin_type], lambda: importlib.import_module(
                    self._in_tree[plugin_type]))
            self.discover()
            eps = self._entry_points.get(plugin_type) or []
            if len(eps) > 1:
                owners = ", ".join(s.distribution for _, s in eps)
                raise CNIError(Code.INVALID_CONFIG, "ambiguous plugin type",
                               f"type {plugin_type!r} is provided by {owners}; uninstall one of them")
            if not eps:
                raise CNIError(Code.INVALID_CONFIG, "unknown plugin type", f"type {plugin_type!r} is not registered")
            ep, source = eps[0]
            return self._load(plugin_type, source.module, ep.load)

    def _load(self, plugin_type: str, module: str, load: Any) -> object:
        try:
            plugin = load()
        except Exception as exc:
            log.error("loading plugin %s from %s failed: %s", plugin_type, module, exc)
            log.debug("traceback of the failed plugin load", exc_info=True)
            raise CNIError(Code.INTERNAL, f"plugin {plugin_type!r} failed to load",
                           f"{module}: {type(exc).__name__}: {exc}") from exc
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

