"""The plugin author's manual: every hook a metacni plugin may implement.

A plugin is a module (or object) registered under the entry-point group
``metacni.plugins``; the entry point's name is the ``type`` that conflists use::

    [project.entry-points."metacni.plugins"]
    tuning = "my_pkg.tuning"

Implement hooks with :data:`metacni.plugin.hookimpl`. The engine calls only the hooks of
the plugin whose ``type`` a config names; a plugin never sees another plugin's calls.

Every verb hook receives one :class:`~metacni.engine.request.Request`. It holds the parsed
config (``request.config``, your own keys included), the invocation (container id, netns,
ifname, CNI_ARGS, runtimeConfig) and ``request.prev_result``: the previous result already
converted to the version this config negotiated, or ``None``.

Errors: raise :class:`metacni.spec.errors.CNIError` with a spec code (7 for bad config,
11 to ask the runtime to retry, ...). Any other exception becomes a CNI error that names
your plugin; the traceback goes to the log, never to stdout, and the chain is rolled back.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from metacni.spec.results import Result

    from .request import PluginInfo, Request

PROJECT = "metacni"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec(firstresult=True)
def cni_plugin_info() -> PluginInfo:
    """Describe the plugin: the CNI versions it speaks and the capabilities it consumes.

    The engine refuses a config whose cniVersion the plugin does not list (code 1), and
    passes into ``request.runtime_config`` only the capabilities listed here that the config
    also enables. Optional: without it, all versions and no capabilities are assumed.
    """


@hookspec(firstresult=True)
def cni_add(request: Request) -> Result | None:
    """Create the attachment and return its result.

    Interface plugins create ``request.ifname`` inside ``request.netns`` and must fail if it
    exists. Chained plugins (``request.prev_result`` set) return the previous result, changed
    or not. Returning ``None`` from a chained plugin means "prevResult unchanged". Whatever
    you created before raising must be undone before the exception leaves the hook.
    """


@hookspec(firstresult=True)
def cni_del(request: Request) -> None:
    """Remove everything the ADD of this attachment created. Must be idempotent.

    Must succeed when the netns, the interface or ``prev_result`` are gone, and when called
    repeatedly. Find state from the attachment identity: (``request.network_name``,
    ``request.container_id``, ``request.ifname``).
    """


@hookspec(firstresult=True)
def cni_check(request: Request) -> None:
    """Raise a CNIError when what ``request.prev_result`` describes is missing or wrong."""


@hookspec(firstresult=True)
def cni_gc(request: Request) -> None:
    """Release every resource of this network not in ``request.valid_attachments``."""


@hookspec(firstresult=True)
def cni_status(request: Request) -> None:
    """Raise a CNIError with code 50 or 51 when the plugin cannot serve ADD now."""
