"""The plugin author's manual: every hook a metacni plugin may implement.

Registering
-----------
A plugin is a module (or any object) with hook functions decorated by
:data:`metacni.plugin.hookimpl`, published under the entry-point group ``metacni.plugins``.
The entry point's *name* is the ``type`` conflists use::

    [project.entry-points."metacni.plugins"]
    pod-alias = "metacni_pod_alias.plugin"

Entry points are listed at start-up and imported only when a config names their type. Two
installed packages claiming the same type are a *clash*: logged as an error at start-up,
shown by ``metacni plugins`` (which then exits 1), and every call of that type fails with
code 7 until one package is removed -- never resolved by load order. An in-process type
shadows a binary of the same name in CNI_PATH, so do not reuse the name of a reference
plugin (``tuning``, ``bandwidth``, ...) unless you mean to replace it.

Only the hooks of the plugin a config names run; a plugin never sees another's calls. A
verb hook you do not implement is a no-op (ADD then passes ``prevResult`` on unchanged).

What every verb hook receives
-----------------------------
One :class:`~metacni.engine.request.Request`:

``request.config``
    The plugin's own config object from the conflist -- your keys included, as written --
    plus ``name`` and ``cniVersion`` copied from the list. ``prevResult`` is removed from it
    (see ``prev_result``); ``runtimeConfig`` holds only the capabilities you declared.
``request.container_id``, ``request.netns``, ``request.ifname``
    CNI_CONTAINERID, CNI_NETNS (a path such as ``/var/run/netns/cni-1234``) and CNI_IFNAME.
``request.args``
    CNI_ARGS as an ordered read-only mapping (``request.args.get("K8S_POD_NAME")``). Values
    come from the pod's owner: validate them as untrusted input.
``request.runtime_config``
    The runtimeConfig entries for capabilities you declared in ``cni_plugin_info`` *and*
    the config enables (``"capabilities": {"mac": true}``), case-insensitive keys.
``request.prev_result``
    The previous plugin's result as a :class:`~metacni.spec.results.Result`, already
    converted to ``request.cni_version`` (so a 0.4.0 list gives you a 0.4.0-family result
    even if the plugin before you answered in 1.0.0), or ``None`` for the first plugin.
    Treat it as read-only; change a copy (:func:`metacni.plugin.result_from_prev`).
``request.network_name``, ``request.cni_version``, ``request.plugin_type``, ``request.cni_path``
    Shortcuts into the config and the environment.
``request.delegate(type, ...)``, ``request.ipam()``
    Run another plugin (an IPAM) with this request's config: in-process when metacni has
    it, exec'd from CNI_PATH otherwise. The result comes back in your version.

How hooks run
-------------
- In the node's network namespace, in a thread. The daemon serves pods concurrently, each
  in its own thread: enter the pod namespace only with :func:`metacni.plugin.enter_netns` or
  :func:`metacni.plugin.in_pod_netns` (they move the calling thread, not the process), never
  ``os.chdir``/``os.environ``/``sys.stdout`` tricks, and guard shared state with locks.
- Never write to stdout: it carries the CNI protocol. Use :mod:`logging`; standalone, the
  log goes to stderr (``METACNI_LOG_LEVEL``), in the daemon to its log.
- Errors: raise :class:`metacni.plugin.CNIError` with a spec code -- ``Code.INVALID_CONFIG``
  (7) for a bad field (:func:`metacni.plugin.bad_field` names it), ``INVALID_ENVIRONMENT``
  (4), ``IO_FAILURE`` (5), ``TRY_AGAIN_LATER`` (11) to make the runtime retry. It reaches
  the runtime as is, labelled with the network and your type. Any *other* exception (a bug)
  becomes code 999 "plugin '<type>' failed" with the exception in ``details``; its
  traceback goes to the log, never to stdout. Either way an ADD chain is rolled back: the
  engine calls DEL on every plugin already run, yours included, in reverse order.

Versions and capabilities
-------------------------
``cni_plugin_info`` declares both; the engine enforces them before your hook runs (see
there). Verbs are gated by the config's version as the spec's skel does: CHECK needs
0.4.0, GC and STATUS need 1.1.0 -- your hooks are never called for a version without them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pluggy

from .markers import PROJECT
from .markers import hookimpl as hookimpl  # re-exported for plugins

if TYPE_CHECKING:
    from pydantic import BaseModel

    from metacni.spec.results import Result

    from .request import PluginInfo, Request

hookspec = pluggy.HookspecMarker(PROJECT)


@hookspec(firstresult=True)
def cni_plugin_info() -> PluginInfo:
    """Declare what the plugin speaks; called once per invocation, must be cheap and pure.

    Return a :class:`~metacni.plugin.PluginInfo`:

    ``versions``
        The CNI versions you accept (default: all of ``ALL_VERSIONS``). A config whose
        cniVersion is not listed fails with code 1 (incompatible versions) naming the plugin,
        and your hooks are not called.
    ``capabilities``
        The runtimeConfig keys you consume (``{"mac", "portMappings"}``). Only these reach
        ``request.runtime_config``, and only when the config also enables them; whatever
        else the runtime sent is cut out before your hook runs.
    ``description``
        One line for ``metacni plugins``.

    Optional: without it, all versions and no capabilities. Raising, or returning something
    other than a PluginInfo, fails every call of the type with code 999 naming the plugin.
    """
    raise NotImplementedError  # a hook specification: pluggy never calls this body


@hookspec(firstresult=True)
def cni_config_model() -> type[BaseModel]:
    """Declare the config this plugin reads from stdin, as a pydantic model class.

    Subclass :class:`metacni.plugin.PluginConfig` (unknown keys allowed, no coercion between
    JSON types) and give the ``ipam`` section its own model (:class:`metacni.plugin.IPAMSection`)
    when you are an IPAM plugin. ``metacni validate`` then reports every problem your model
    finds in each plugin object of your type, with its JSON path
    (``$.plugins[0].ipam.ranges[0][0].subnet``), and ``metacni.plugin.validate_config(Model,
    request.config, request.network_name)`` in your hooks turns the first one into CNI error 7
    and otherwise returns the validated instance: use it, do not read the keys again.

    Optional: without it, only the spec's own keys of your plugin object are checked.
    Called by ``metacni validate``, never on the pod path; must be cheap and pure.
    """
    raise NotImplementedError  # a hook specification: pluggy never calls this body


@hookspec(firstresult=True)
def cni_add(request: Request) -> Result | None:
    """Attach: create or change what the config asks for, and return the result.

    An *interface* plugin (first in the chain, ``prev_result`` is None) creates
    ``request.ifname`` inside ``request.netns`` -- failing with a CNIError if it exists --
    and returns a new result (``request.result(interfaces=..., ips=...)``).

    A *chained* plugin (``prev_result`` set) returns the previous result, changed or not:
    start from :func:`metacni.plugin.result_from_prev`, then edit it (e.g. the ``mac`` or
    ``mtu`` of the interface found with :func:`metacni.plugin.find_interface`). Returning
    ``None`` means "prevResult unchanged". A dict in any result family is accepted too.

    Whatever you return is converted to ``request.cni_version`` before the next plugin
    sees it; fields that version cannot carry (``mtu`` below 1.0.0) are dropped.

    Raise a CNIError to fail; undo what this call changed before raising. The engine then
    rolls the chain back with DEL -- including your own DEL, which must cope with a
    half-done ADD.
    """


@hookspec(firstresult=True)
def cni_del(request: Request) -> None:
    """Detach: remove everything the ADD of this attachment created. Must be idempotent.

    Must succeed when the netns is gone (check :func:`metacni.plugin.netns_exists`), when
    the interface is gone, when ``prev_result`` is None (a runtime may have lost it) and
    when called twice. Find your state from the attachment identity
    (``request.network_name``, ``request.container_id``, ``request.ifname``), not from
    anything only ADD knew. Return None; raise a CNIError only when something that still
    exists could not be removed.
    """


@hookspec(firstresult=True)
def cni_check(request: Request) -> None:
    """Verify: raise a CNIError when what ADD set up (as ``request.prev_result`` and the
    config describe it) is missing or differs. Return None when all is as expected.

    Only called for cniVersion 0.4.0 and later, and never when the list has
    ``disableCheck``. Must not change anything.
    """


@hookspec(firstresult=True)
def cni_gc(request: Request) -> None:
    """Collect garbage: release every resource of ``request.network_name`` that belongs to
    no attachment in ``request.valid_attachments`` ((container_id, ifname) pairs).

    No netns, ifname or prev_result. Only called for cniVersion 1.1.0 and later; a plugin
    that delegates (IPAM) must pass GC on with ``request.ipam("GC")``.
    """


@hookspec(firstresult=True)
def cni_status(request: Request) -> None:
    """Report readiness: raise a CNIError with ``Code.NOT_AVAILABLE`` (50) or
    ``Code.LIMITED_CONNECTIVITY`` (51) when the plugin cannot serve ADD now; return None
    when it can. Only called for cniVersion 1.1.0 and later."""
