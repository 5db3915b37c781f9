"""The public API for plugin authors. Import from here; everything else is internal.

    from metacni.plugin import hookimpl, PluginInfo, Request, Result, CNIError, Code

See :mod:`metacni.engine.hookspecs` for the hooks and docs/plugins.md for a tutorial.
"""

from metacni.engine.hookspecs import hookimpl
from metacni.engine.request import ADD, CHECK, DEL, GC, STATUS, Invocation, PluginInfo, Request
from metacni.spec.errors import CNIError, Code
from metacni.spec.results import DNS, Interface, IPConfig, Result, Route

__all__ = [
    "ADD", "CHECK", "DEL", "DNS", "GC", "STATUS", "CNIError", "Code", "IPConfig", "Interface",
    "Invocation", "PluginInfo", "Request", "Result", "Route", "hookimpl",
]
