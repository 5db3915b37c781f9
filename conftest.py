"""Fixtures shared by tests/, plugins/*/tests and e2e/."""

from __future__ import annotations

import fcntl
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from metacni import shimbin
from metacni.testing.netns import Sandbox, is_root, sandbox

ROOT = Path(__file__).resolve().parent


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


@pytest.fixture
def box() -> Iterator[Sandbox]:
    """Namespaces and host links owned by one test, removed even when it fails."""
    if not is_root():
        pytest.skip("needs root for network namespaces")
    with sandbox() as sb:
        yield sb
