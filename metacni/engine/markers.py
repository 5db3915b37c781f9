"""``hookimpl``: the pluggy implementation marker of metacni's plugin hooks."""

from __future__ import annotations

import pluggy

PROJECT = "metacni"

hookimpl = pluggy.HookimplMarker(PROJECT)
