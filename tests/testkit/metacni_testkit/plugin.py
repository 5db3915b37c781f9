"""The pytest plugin: fixtures for tests/, plugins/*/tests, e2e/ and third-party plugin tests.

Registered through the ``pytest11`` entry point of the ``metacni-testkit`` distribution, so any
project that installs it gets the fixtures without a conftest.py.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from metacni_testkit.netns import Sandbox, is_root, sandbox


@pytest.fixture
def box() -> Iterator[Sandbox]:
    """Namespaces and host links owned by one test, removed even when it fails.

    Skips the test when not root (network namespaces need CAP_SYS_ADMIN)."""
    if not is_root():
        pytest.skip("needs root for network namespaces")
    with sandbox() as sb:
        yield sb
