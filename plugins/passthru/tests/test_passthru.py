"""``passthru`` answers as Multus' ``cmd/passthru-cni``: ADD an empty result of the config's
version, DEL and CHECK nothing (the head of an auxiliary chain, metacni/meta/auxchain.py)."""

from __future__ import annotations

import pytest

from metacni.engine.invoke import Invoker
from metacni.engine.registry import Registry
from metacni.engine.request import Invocation
from metacni.spec.args import CniArgs


def _invoke(command: str, version: str) -> dict | None:
    conf = {"cniVersion": version, "name": "vendor-cni-chain", "type": "passthru"}
    inv = Invocation(command=command, container_id="c1", netns="/proc/self/ns/net", ifname="net1",
                     args=CniArgs([]), cni_path=())
    result = Invoker(Registry()).invoke("passthru", conf, inv)
    return result.to_wire() if result is not None else None


@pytest.mark.parametrize("version", ["0.3.1", "0.4.0", "1.0.0", "1.1.0"])
def test_add_is_an_empty_result_of_the_config_version(version: str) -> None:
    wire = _invoke("ADD", version)
    assert wire is not None and wire["cniVersion"] == version
    assert not wire.get("interfaces") and not wire.get("ips") and not wire.get("routes")


@pytest.mark.parametrize("command", ["DEL", "CHECK"])
def test_del_and_check_do_nothing(command: str) -> None:
    assert _invoke(command, "1.0.0") is None
