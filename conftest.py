"""Repository-only: a checkout whose environment lacks ``pip install -e tests/testkit`` still
gets the test kit's fixtures. Installed, the kit registers itself (``pytest11`` entry point)
and this file does nothing."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

if importlib.util.find_spec("metacni_testkit") is None:
    sys.path.insert(0, str(Path(__file__).resolve().parent / "tests" / "testkit"))
    pytest_plugins = ["metacni_testkit.plugin"]
