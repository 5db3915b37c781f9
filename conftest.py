"""Fixtures shared by tests/, plugins/*/tests and e2e/."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from metacni.testing.netns import Sandbox, is_root, sandbox


@pytest.fixture
def box() -> Iterator[Sandbox]:
    """Namespaces and host links owned by one test, removed even when it fails."""
    if not is_root():
        pytest.skip("needs root for network namespaces")
    with sandbox() as sb:
        yield sb
