"""The meta-plugin tests' node: the testkit's ``node`` with the fake API server listening inside
it, this node registered, and the primary network plus ``00-metacni.conf`` in its conf dir.

Everything lives inside the per-test node namespace: bridges, veths, and the fake API's
listening socket (so the plugin, whether in-process on the test thread or a subprocess
started with ``ip netns exec``, reaches it at 127.0.0.1 of the node).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from metacni_testkit.nodes import Node


@pytest.fixture
def node(node: Node) -> Node:
    node.start_api()
    node.write_primary()
    return node


@pytest.fixture(autouse=True)
def _metacni_logger_restored() -> Iterator[None]:
    """The meta plugin configures the ``metacni`` logger from the node's config (logLevel,
    logToStderr: false stops propagation) for the rest of the process: restore it after each
    test, or a later test of the same worker loses the records caplog looks for."""
    logger = logging.getLogger("metacni")
    saved = (logger.level, logger.propagate, list(logger.handlers))
    yield
    logger.setLevel(saved[0])
    logger.propagate = saved[1]
    for handler in [h for h in logger.handlers if h not in saved[2]]:
        logger.removeHandler(handler)
        handler.close()
