"""Repository-only: a checkout whose environment lacks ``pip install -e tests/testkit`` still
gets the test kit's fixtures (installed, the kit registers itself through its ``pytest11`` entry
point), and the static shim is rebuilt from its source when that changed."""

from __future__ import annotations

import fcntl
import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from metacni import shimbin

ROOT = Path(__file__).resolve().parent

if importlib.util.find_spec("metacni_testkit") is None:
    sys.path.insert(0, str(ROOT / "tests" / "testkit"))
    pytest_plugins = ["metacni_testkit.plugin"]


def pytest_sessionstart(session: pytest.Session) -> None:
    """In a source checkout (editable install), bring the static shim up to date with
    shim/metacni-shim.c before any test execs it: ``make`` rebuilds only when the source
    changed, so a checkout that was installed before a change (or before the shim existed) tests
    what it holds. One process at a time (xdist workers start together)."""
    out = shimbin.PACKAGED.parent
    if not out.is_relative_to(ROOT) or shutil.which("make") is None:
        return
    with open(ROOT / "shim" / ".build.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        subprocess.run(["make", "-s", "-C", str(ROOT / "shim"), f"OUT={out}"], check=True)
