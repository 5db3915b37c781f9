"""The example's tests need only metacni's public test helpers, so they also run outside the
metacni repository (``pytest tests`` in a copy of this folder)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from metacni_testkit.netns import Sandbox, is_root, sandbox


@pytest.fixture
def box() -> Iterator[Sandbox]:
    """Namespaces created by one test, removed even when it fails."""
    if not is_root():
        pytest.skip("needs root for network namespaces")
    with sandbox() as sb:
        yield sb
