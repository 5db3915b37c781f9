"""``hookimpl``: pluggy's implementation marker, without importing pluggy.

Why: every plugin module applies ``@hookimpl`` at import, and ``import pluggy`` (with the
``inspect``, ``ast`` and ``dis`` it pulls in) is ~17 ms of a standalone CNI call (``-X
importtime``, busy 2-core machine); the registry calls metacni's own plugins without pluggy
until something needs the plugin manager. The marker sets exactly the attribute pluggy's
``HookimplMarker`` sets (a test compares them), so pluggy registers these functions as its own.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from typing import Any

PROJECT = "metacni"
IMPL_ATTR = PROJECT + "_impl"


class _HookimplMarker:
    """Same signature and effect as ``pluggy.HookimplMarker(PROJECT)``."""

    __slots__ = ("project_name",)

    def __init__(self, project_name: str) -> None:
        self.project_name = project_name

    def __call__(self, function: Any = None, hookwrapper: bool = False, optionalhook: bool = False,
                 tryfirst: bool = False, trylast: bool = False, specname: str | None = None,
                 wrapper: bool = False) -> Any:
        def mark(func: Any) -> Any:
            setattr(func, self.project_name + "_impl", {
                "wrapper": wrapper, "hookwrapper": hookwrapper, "optionalhook": optionalhook,
                "tryfirst": tryfirst, "trylast": trylast, "specname": specname})
            return func

        return mark if function is None else mark(function)


if TYPE_CHECKING:
    import pluggy

    hookimpl = pluggy.HookimplMarker(PROJECT)
else:
    hookimpl = _HookimplMarker(PROJECT)
