"""Fixtures for bridge tests: a node namespace the calling thread works in, pods, a data dir."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from metacni_testkit.netns import Sandbox, netns_path, tag

from metacni.engine.invoke import Invoker
from metacni.engine.registry import Registry
from metacni.engine.request import Invocation
from metacni.kernel.netns import enter
from metacni.spec.results import Result

CNI_PATH = ("/usr/lib/cni",)


@dataclass
class Node:
    """A node namespace plus a network config; ``add``/``delete`` run the plugin inside it."""

    box: Sandbox
    name: str
    data_dir: str
    invoker: Invoker = field(default_factory=lambda: Invoker(Registry()))

    @property
    def path(self) -> str:
        return netns_path(self.name)

    def conf(self, **overrides: Any) -> dict[str, Any]:
        subnet4 = overrides.pop("subnet4", "10.77.0.0/24")
        ranges = overrides.pop("ranges", [[{"subnet": subnet4}], [{"subnet": "fd77::/64"}]])
        conf: dict[str, Any] = {
            "cniVersion": "1.0.0", "name": overrides.pop("name", tag("net")), "type": "bridge",
            "bridge": "cni0", "isDefaultGateway": True,
            "ipam": {"type": "host-local", "dataDir": self.data_dir, "ranges": ranges},
        }
        conf.update(overrides)
        return conf

    def pod(self) -> str:
        return netns_path(self.box.netns("mcpod"))

    def inv(self, command: str, pod: str, cid: str, ifname: str = "eth0") -> Invocation:
        return Invocation(command=command, container_id=cid, netns=pod, ifname=ifname, cni_path=CNI_PATH)

    def run(self, command: str, conf: dict[str, Any], pod: str, cid: str, ifname: str = "eth0",
            invoker: Invoker | None = None, prev: Result | None = None) -> Result | None:
        with enter(self.path):
            return (invoker or self.invoker).invoke("bridge", conf, self.inv(command, pod, cid, ifname),
                                                    prev_result=prev)


@pytest.fixture
def node(box: Sandbox) -> Iterator[Node]:
    with tempfile.TemporaryDirectory(prefix="mcbr-") as data_dir:
        yield Node(box=box, name=box.netns("mcnode"), data_dir=data_dir)
