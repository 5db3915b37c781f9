"""The test kit's node: what it starts, :meth:`Node.close` stops; what it lays out, the factory
removes; pods get their own namespaces."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from metacni_testkit.netns import Sandbox, link_names
from metacni_testkit.nodes import NODE_NAME, Node


def test_close_stops_the_api_and_kills_the_daemon(make_node: Callable[..., Node]) -> None:
    node = make_node()
    api = node.start_api()
    daemon = node.start_daemon()
    assert api.running and daemon.proc.poll() is None
    assert api.get_node(NODE_NAME) is not None and node.kubeconfig.is_file()
    node.close()
    assert not api.running
    assert daemon.proc.poll() is not None


@pytest.fixture
def roots() -> Iterator[list[Path]]:
    """Directories that must be gone once the fixtures set up after this one are torn down."""
    seen: list[Path] = []
    yield seen
    assert [p for p in seen if p.exists()] == []


def test_factory_removes_the_node_directory(roots: list[Path], make_node: Callable[..., Node],
                                            box: Sandbox) -> None:
    node = make_node(prefix="mctk")
    assert node.name in box.namespaces and node.conf_dir.is_dir()
    roots.append(node.root)


def test_pods_are_namespaces_of_the_box_and_in_the_api_only_when_it_runs(node: Node, box: Sandbox) -> None:
    lonely = node.pod("a")
    assert lonely.netns in box.namespaces and link_names(lonely.netns) == {"lo"}
    node.start_api()
    listed = node.pod("b", annotations={"k": "v"})
    assert node.api is not None
    assert node.api.get_pod("default", "b") is not None
    assert node.api.get_pod("default", "a") is None
    assert listed.path == f"/run/netns/{listed.netns}" and listed.container_id != lonely.container_id
