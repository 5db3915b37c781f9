"""The meta-plugin tests' node: the testkit's ``node`` with the fake API server listening inside
it, this node registered, and the primary network plus ``00-metacni.conf`` in its conf dir.

Everything lives inside the per-test node namespace: bridges, veths, and the fake API's
listening socket (so the plugin, whether in-process on the test thread or a subprocess
started with ``ip netns exec``, reaches it at 127.0.0.1 of the node).
"""

from __future__ import annotations

import pytest

from metacni_testkit.nodes import Node


@pytest.fixture
def node(node: Node) -> Node:
    node.start_api()
    node.write_primary()
    return node
