"""Kubernetes Events of the meta plugin on the fake API's core/v1 ``events`` resource.

Events are installed as the daemon installs them (:func:`metacni.meta.events.install`); the ADD
runs in-process. Posting is asynchronous, so tests wait (bounded) for the events to appear.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from metacni.kernel.netns import enter
from metacni.meta import events
from metacni.meta.kube import KubeSettings
from metacni_testkit.nodes import Node as MetaNode

NETWORKS = "k8s.v1.cni.cncf.io/networks"


@pytest.fixture
def recording(node: MetaNode) -> Iterator[MetaNode]:
    events.install(str(node.kubeconfig))
    try:
        yield node
    finally:
        events.uninstall()


def _wait(what: str, probe: Callable[[], Any], timeout: float = 15.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value or time.monotonic() > deadline:
            assert value, f"timed out waiting for {what}"
            return value
        time.sleep(0.02)


def _events(node: MetaNode, namespace: str = "default") -> list[dict[str, Any]]:
    return list(node.api.list_objects("events", namespace))


def _flush(node: MetaNode) -> None:
    rec = events.recorder_for(node.meta_conf())
    assert rec is not None and rec.flush(15.0)


def test_added_interface_per_attachment(recording: MetaNode) -> None:
    node = recording
    node.two_nads()
    pod = node.pod(annotations={NETWORKS: "net-a"})
    node.cni("ADD", pod)

    found = _wait("two events", lambda: len(_events(node)) >= 2 and _events(node))
    _flush(node)
    found = _events(node)
    assert len(found) == 2
    by_message = sorted(e["message"] for e in found)
    assert re.fullmatch(r"Add eth0 \[10\.88\.0\.\d+/24\] from primary-net", by_message[0]), by_message
    assert re.fullmatch(r"Add net1 \[10\.89\.1\.\d+/24\] from default/net-a", by_message[1]), by_message
    for event in found:
        assert event["type"] == "Normal" and event["reason"] == "AddedInterface"
        assert event["involvedObject"]["kind"] == "Pod"
        assert (event["involvedObject"]["namespace"], event["involvedObject"]["name"]) == ("default", "web")
        assert event["source"]["component"] == "metacni"
    node.cni("DEL", pod)


def test_failed_add_records_a_warning_naming_network_and_reason(recording: MetaNode) -> None:
    node = recording
    node.add_nad("broken", "br-x", "10.89.9.0/24", type="no-such-plugin")
    pod = node.pod("missing", annotations={NETWORKS: "absent-net"})
    bad = node.pod("bad", annotations={NETWORKS: "broken"})

    node.cni_error("ADD", pod)
    node.cni_error("ADD", bad)

    _wait("the NoNetworkFound event", lambda: [e for e in _events(node) if e["reason"] == "NoNetworkFound"])
    _wait("the failure event", lambda: [e for e in _events(node) if e["reason"] == "ErrorAddingInterface"])
    _flush(node)
    [missing] = [e for e in _events(node) if e["involvedObject"]["name"] == "missing"]
    assert missing["type"] == "Warning" and missing["reason"] == "NoNetworkFound"
    assert "absent-net" in missing["message"] and "default" in missing["message"]
    [failed] = [e for e in _events(node) if e["involvedObject"]["name"] == "bad"]
    assert failed["type"] == "Warning" and failed["reason"] == "ErrorAddingInterface"
    assert "default/broken" in failed["message"] and "no-such-plugin" in failed["message"]
    node.assert_clean(bad)


def test_events_api_500_does_not_fail_the_add(recording: MetaNode) -> None:
    node = recording
    fault = node.api.inject_fault(500, verb="create", resource="events")
    pod = node.pod()
    result = node.cni("ADD", pod)

    assert result is not None and result["ips"]
    _wait("the event POST", lambda: fault.hits >= 1)
    _flush(node)
    assert _events(node) == []
    assert node.network_status(pod)[0]["interface"] == "eth0"
    node.cni("DEL", pod)
    node.assert_clean(pod)


def test_a_hanging_events_api_does_not_block_the_add(recording: MetaNode) -> None:
    node = recording
    gate = threading.Event()
    fault = node.api.inject_fault(verb="create", resource="events", gate=gate)
    try:
        pod = node.pod()
        node.cni("ADD", pod)  # returns while the event POST is held by the gate
        _wait("the held event POST", lambda: fault.hits >= 1)
        assert _events(node) == []
    finally:
        gate.set()
        node.api.remove_fault(fault)
    node.cni("DEL", pod)


def test_events_are_rate_limited_per_pod_and_reason(node: MetaNode) -> None:
    settings = KubeSettings(kubeconfig=node.kubeconfig, timeout=5, connect_timeout=2, retries=0)
    rec = events.Recorder(settings, burst=2, refill=3600)
    try:
        with enter(node.path):  # the posting thread starts here, where the fake API listens
            sent = [rec.emit(events.Event("default", "web", "", "Warning", "ErrorAddingInterface", f"try {i}"))
                for i in range(5)]
        other = rec.emit(events.Event("default", "db", "", "Warning", "ErrorAddingInterface", "db"))
        assert rec.flush(15.0)
    finally:
        rec.close()
    assert sent == [True, True, False, False, False] and other
    assert sorted(e["message"] for e in _events(node)) == ["db", "try 0", "try 1"]


def test_events_wait_for_a_moment_without_cni_calls(node: MetaNode) -> None:
    """In the daemon an event goes out once no CNI call is in flight (``quiet``), or after
    ``MAX_DEFER`` seconds: a call's answer never waits behind a POST."""
    settings = KubeSettings(kubeconfig=node.kubeconfig, timeout=5, connect_timeout=2, retries=0)
    calls_done = threading.Event()
    waits: list[float] = []

    def quiet(timeout: float) -> bool:
        waits.append(timeout)
        return calls_done.wait(timeout)

    rec = events.Recorder(settings, quiet=quiet)
    try:
        with enter(node.path):
            assert rec.emit(events.Event("default", "web", "", "Normal", "AddedInterface", "held"))
        assert not rec.flush(0.2)  # a call is still in flight
        assert _events(node) == [] and 0 < waits[0] <= events.MAX_DEFER
        calls_done.set()
        assert rec.flush(15.0)
    finally:
        rec.close()
    assert [e["message"] for e in _events(node)] == ["held"]


def test_in_process_calls_without_install_record_no_events(node: MetaNode) -> None:
    """Without install() (and not the one-shot console script) no recorder exists and nothing
    is posted."""
    assert events.recorder_for(node.meta_conf()) is None
    pod = node.pod()
    node.cni("ADD", pod)
    assert node.api.count("create", "events") == 0
    node.cni("DEL", pod)


def test_a_standalone_failed_add_hands_its_warning_to_a_detached_poster(node: MetaNode) -> None:
    """The ``metacni`` console script (no daemon, API access from its kubeconfig): a failed ADD
    answers at once, even while the API holds every event POST, and a detached process records
    the Warning afterwards (NoNetworkFound, then ErrorAddingInterface). A successful standalone
    ADD hands off nothing."""
    node.add_nad("broken", "br-x", "10.89.9.0/24", type="no-such-plugin")
    ok, missing, bad = node.pod("ok"), node.pod("missing", annotations={NETWORKS: "absent-net"}), \
        node.pod("bad", annotations={NETWORKS: "broken"})
    rc, _ = node.exec_binary("ADD", ok)
    assert rc == 0
    gate = threading.Event()
    fault = node.api.inject_fault(verb="create", resource="events", gate=gate)
    try:
        rc, err = node.exec_binary("ADD", missing)  # returns while no event can be posted
        assert rc == 1 and err is not None and err["code"] == 7, err
        _wait("the held event POST", lambda: fault.hits >= 1)
        assert _events(node) == []
    finally:
        gate.set()
        node.api.remove_fault(fault)
    [found] = _wait("the NoNetworkFound event", lambda: _events(node))
    assert (found["type"], found["reason"]) == ("Warning", "NoNetworkFound")
    assert found["involvedObject"]["name"] == "missing" and "absent-net" in found["message"]
    assert found["source"]["component"] == "metacni"

    rc, err = node.exec_binary("ADD", bad)
    assert rc == 1 and err is not None
    failed = _wait("the ErrorAddingInterface event", lambda: [e for e in _events(node)
                                                              if e["reason"] == "ErrorAddingInterface"])
    assert [e["involvedObject"]["name"] for e in failed] == ["bad"]
    assert "default/broken" in failed[0]["message"] and "no-such-plugin" in failed[0]["message"]
    assert len(_events(node)) == 2  # none for the successful ADD
    assert node.exec_binary("DEL", ok)[0] == 0
    node.assert_clean(ok)
    node.assert_clean(bad)


def test_message_has_multus_wording() -> None:
    assert events.added_message("net1", ["10.1.1.2/24", "fd00::2/64"], "default/net1") == \
        "Add net1 [10.1.1.2/24 fd00::2/64] from default/net1"
    assert events.added_message("eth0", [], "") == "Add eth0 []"
