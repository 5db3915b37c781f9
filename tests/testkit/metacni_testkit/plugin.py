"""The pytest plugin: fixtures for tests/, plugins/*/tests, e2e/ and third-party plugin tests.

Registered through the ``pytest11`` entry point of the ``metacni-testkit`` distribution, so any
project that installs it gets the fixtures without a conftest.py:

- ``box``: namespaces and host links owned by one test (:class:`~metacni_testkit.netns.Sandbox`);
- ``make_node``: ``make_node(cls=Node, prefix="mcnode", **fields)`` makes a node namespace with a
  fresh directory tree (:class:`~metacni_testkit.nodes.Node` or a subclass);
- ``node``: one such node. A folder that needs more from it overrides the fixture by requesting
  it, e.g. ``def node(node): node.start_api(); node.write_primary(); return node``.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

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


@pytest.fixture
def make_node(box: Sandbox) -> Iterator[Callable[..., Any]]:
    """A factory of nodes; every node it made is closed (daemon killed, API stopped) and its
    directory removed at the end of the test, before ``box`` deletes the namespaces."""
    from metacni_testkit.nodes import Node  # imports metacni: only for tests that ask for a node

    made: list[Any] = []
    with ExitStack() as stack:

        def make(cls: Callable[..., Any] = Node, prefix: str = "mcnode", **fields: Any) -> Any:
            root = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix=f"{prefix}-")))
            node = cls(box=box, name=box.netns(prefix), root=root, **fields)
            made.append(node)
            return node

        try:
            yield make
        finally:
            for node in reversed(made):
                node.close()


@pytest.fixture
def node(make_node: Callable[..., Any]) -> Any:
    """A bare node: its namespace, a directory tree, the in-process invoker (see ``nodes.Node``)."""
    return make_node()
