"""The pytest plugin: fixtures for tests/, plugins/*/tests, e2e/ and third-party plugin tests.

Registered through the ``pytest11`` entry point of the ``metacni-testkit`` distribution, so any
project that installs it gets the fixtures without a conftest.py:

- ``box``: namespaces and host links owned by one test (:class:`~metacni_testkit.netns.Sandbox`);
- ``make_node``: ``make_node(cls=Node, prefix="mcnode", **fields)`` makes a node namespace with a
  fresh directory tree (:class:`~metacni_testkit.nodes.Node` or a subclass);
- ``node``: one such node. A folder that needs more from it overrides the fixture by requesting
  it, e.g. ``def node(node): node.start_api(); node.write_primary(); return node``;
- (autouse) the ``metacni`` logger is restored after each test.
"""

from __future__ import annotations

import logging
import sys
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


@pytest.fixture(autouse=True)
def _metacni_logging_restored() -> Iterator[None]:
    """Each test gets the ``metacni`` logger back as it found it. An in-process meta call applies
    the meta config's logLevel/logFile/logToStderr to the process (as a CNI call or the daemon
    should); without this, ``logToStderr: false`` in one test would hide later tests' records from
    ``caplog`` on the same xdist worker."""
    logger = logging.getLogger("metacni")
    saved = (logger.level, list(logger.handlers), logger.propagate, logger.disabled)
    service = sys.modules.get("metacni.meta.service")
    configured = set(getattr(service, "_configured", ()))
    yield
    for handler in [h for h in logger.handlers if h not in saved[1]]:
        logger.removeHandler(handler)
        handler.close()
    logger.setLevel(saved[0])
    logger.handlers[:] = saved[1]
    logger.propagate, logger.disabled = saved[2], saved[3]
    service = sys.modules.get("metacni.meta.service")
    if service is not None:
        service._configured.clear()
        service._configured.update(configured)
