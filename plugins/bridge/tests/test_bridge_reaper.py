"""DEL with the link reaper (daemon mode): detached at answer time, deleted afterwards.

The reaper is held (nothing deleted until released), so the pending state is observed
without timing; standalone DEL (no reaper) is what every other bridge test exercises.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest

from metacni.kernel import reaper
from metacni.kernel.netns import enter
from metacni.sim.traffic import ping
from metacni_plugins.bridge.naming import host_veth_name
from metacni_testkit.netns import link_names, links


@pytest.fixture
def held(node) -> Iterator[reaper.Reaper]:
    with enter(node.path):
        r = reaper.enable(hold=True)
    try:
        yield r
    finally:
        reaper.disable()


def _link(ns: str, name: str) -> dict:
    return next((ln for ln in links(ns) if ln["ifname"] == name), {})


def test_del_answers_with_the_pod_cut_off_and_the_reaper_deletes_later(node, held):
    conf = node.conf()
    pod = node.pod().path
    result = node.invoke("ADD", conf, pod, "reap-1")
    assert result is not None and ping(pod, "10.77.0.1")
    host = host_veth_name(conf["name"], "reap-1", "eth0")
    assert _link(node.name, host)["master"] == "cni0"

    node.invoke("DEL", conf, pod, "reap-1")
    assert held.pending(host)
    left = _link(node.name, host)
    assert left, "held reaper: the link must still exist when DEL answers"
    assert "master" not in left and "UP" not in left["flags"] and left.get("ifalias") == reaper.MARK
    assert left.get("group") == str(reaper.GROUP)
    assert not ping(pod, "10.77.0.1")  # off the bridge: its address may be given to another pod now
    assert held.deleted == 0

    assert reaper.disable()  # drains
    assert host not in link_names(node.name)
    assert "eth0" not in link_names(pod.rsplit("/", 1)[1])
    assert held.deleted == 1


def test_deletions_queued_together_go_in_one_request(node, held):
    conf = node.conf()
    pods = {f"reap-b{i}": node.pod().path for i in range(3)}
    for cid, pod in pods.items():
        node.invoke("ADD", conf, pod, cid)
    for cid, pod in pods.items():
        node.invoke("DEL", conf, pod, cid)
    hosts = [host_veth_name(conf["name"], cid, "eth0") for cid in pods]
    assert set(hosts) <= link_names(node.name)
    assert reaper.disable()
    assert not set(hosts) & link_names(node.name)
    assert (held.deleted, held.requests) == (3, 1)


def _added_then_deleted(node, container_id: str) -> tuple[dict[str, Any], str, str]:
    """ADD then DEL of one pod on the node's bridge: its conf, netns path and host veth name."""
    conf = node.conf()
    pod = node.pod().path
    node.invoke("ADD", conf, pod, container_id)
    node.invoke("DEL", conf, pod, container_id)
    return conf, pod, host_veth_name(conf["name"], container_id, "eth0")


def test_add_after_del_of_the_same_container_waits_for_the_deletion(node, held):
    conf, pod, host = _added_then_deleted(node, "reap-2")
    assert held.pending(host)

    out: dict[str, object] = {}

    def add() -> None:
        try:
            out["result"] = node.invoke("ADD", conf, pod, "reap-2")
        except Exception as exc:  # reported below
            out["error"] = exc

    t = threading.Thread(target=add)
    t.start()
    assert held.wait_waiters(1, timeout=30), "the ADD should wait for the pending deletion"
    assert "result" not in out and "error" not in out
    held.release()
    t.join(60)
    assert not t.is_alive() and "error" not in out, out
    assert held.deleted == 1
    assert _link(node.name, host)["master"] == "cni0"
    assert ping(pod, "10.77.0.1")
    node.invoke("DEL", conf, pod, "reap-2")


def test_gc_deletes_links_a_crash_left_detached(node, held):
    """A daemon killed after answering DEL never deletes the pair; the bridge's CNI GC does."""
    conf = node.conf()
    pods = {cid: node.pod().path for cid in ("keep", "gone")}
    for cid, pod in pods.items():
        node.invoke("ADD", conf, pod, cid)
    node.invoke("DEL", conf, pods["gone"], "gone")
    gone = host_veth_name(conf["name"], "gone", "eth0")
    reaper._reaper = None  # the crash: the queued deletion is lost (the held thread stays parked)
    try:
        assert gone in link_names(node.name)
        node.invoke("GC", {**conf, "cniVersion": "1.1.0",
                        "cni.dev/valid-attachments": [{"containerID": "keep", "ifname": "eth0"}]}, "", "")
        assert gone not in link_names(node.name)
        assert host_veth_name(conf["name"], "keep", "eth0") in link_names(node.name)
        assert ping(pods["keep"], "10.77.0.1")
    finally:
        held.stop()


def test_add_finishes_the_deletion_a_crash_left_pending(node, held):
    """Standalone ADD (no reaper) of an attachment whose detached pair a crash left behind."""
    conf, pod, host = _added_then_deleted(node, "reap-3")
    reaper._reaper = None  # the crash
    try:
        assert _link(node.name, host).get("ifalias") == reaper.MARK
        node.invoke("ADD", conf, pod, "reap-3")
        assert _link(node.name, host)["master"] == "cni0" and "ifalias" not in _link(node.name, host)
        assert ping(pod, "10.77.0.1")
        node.invoke("DEL", conf, pod, "reap-3")  # no reaper now: synchronous
        assert host not in link_names(node.name)
    finally:
        held.stop()
