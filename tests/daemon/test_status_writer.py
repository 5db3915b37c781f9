"""The daemon's network-status writer: newest wins per pod, DEL cancels, retries, bounded, flushed
at stop. Its ``write`` here is a recording callable (the API side is covered by the daemon tests
against the fake API server)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from metacni.daemon.server import InFlight
from metacni.daemon.status_writer import StatusWrite, StatusWriter

WAIT = 10.0


class Recorder:
    """A ``write`` callable: records (pod, entries, uid), can be held, can fail or answer "gone"."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, list[dict[str, Any]], str]] = []
        self.hold = threading.Event()
        self.hold.set()
        self.entered = threading.Event()
        self.failures = 0  # the next this many calls raise
        self.gone = False
        self.cond = threading.Condition()

    def __call__(self, namespace: str, name: str, entries: list[dict[str, Any]], uid: str) -> bool:
        self.entered.set()
        assert self.hold.wait(WAIT)
        with self.cond:
            self.calls.append((name, entries, uid))
            self.cond.notify_all()
            if self.failures:
                self.failures -= 1
                raise RuntimeError("HTTP 503")
        return not self.gone

    def wait_calls(self, n: int) -> bool:
        with self.cond:
            return self.cond.wait_for(lambda: len(self.calls) >= n, WAIT)


@pytest.fixture
def outcomes() -> list[str]:
    return []


@pytest.fixture
def writer(outcomes: list[str]) -> Iterator[StatusWriter]:
    w = StatusWriter(backoff=0.01, max_backoff=0.05, on_result=outcomes.append)
    yield w
    w.stop(2.0)


def job(rec: Recorder, pod: str, cid: str, tag: str, uid: str = "u1") -> StatusWrite:
    return StatusWrite("ns", pod, uid, cid, [{"name": tag}], rec)


def test_written_with_the_uid_and_flushed(writer: StatusWriter, outcomes: list[str]) -> None:
    rec = Recorder()
    writer.submit(job(rec, "a", "c1", "first", uid="abc"))
    assert writer.flush(WAIT)
    assert rec.calls == [("a", [{"name": "first"}], "abc")] and outcomes == ["ok"] and writer.pending() == 0


def test_newest_write_of_a_pod_replaces_the_waiting_one(writer: StatusWriter) -> None:
    rec = Recorder()
    rec.hold.clear()
    writer.submit(job(rec, "a", "c1", "one"))
    assert rec.entered.wait(WAIT)  # "one" is on the wire, held
    writer.submit(job(rec, "a", "c2", "two"))
    writer.submit(job(rec, "b", "c3", "other pod"))
    writer.submit(job(rec, "a", "c2", "three"))
    assert writer.pending() == 2
    rec.hold.set()
    assert writer.flush(WAIT)
    assert [(n, e[0]["name"]) for n, e, _ in rec.calls] == [("a", "one"), ("b", "other pod"), ("a", "three")]


def test_del_cancels_the_containers_waiting_write_only(writer: StatusWriter) -> None:
    rec = Recorder()
    rec.hold.clear()
    writer.submit(job(rec, "busy", "c0", "holds the thread"))
    assert rec.entered.wait(WAIT)
    writer.submit(job(rec, "a", "c1", "gone before written"))
    writer.submit(job(rec, "b", "c2", "kept"))
    assert writer.cancel("c1") and not writer.cancel("c1") and not writer.cancel("nope")
    rec.hold.set()
    assert writer.flush(WAIT)
    assert [n for n, _, _ in rec.calls] == ["busy", "b"]


def test_a_failed_write_is_retried_until_written(writer: StatusWriter, outcomes: list[str]) -> None:
    rec = Recorder()
    rec.failures = 2
    writer.submit(job(rec, "a", "c1", "x"))
    assert writer.flush(WAIT)
    assert len(rec.calls) == 3 and outcomes == ["retry", "retry", "ok"]


def test_a_write_for_a_gone_or_recreated_pod_is_dropped(outcomes: list[str]) -> None:
    asked: list[tuple[str, str, str]] = []

    def still_wanted(namespace: str, name: str, uid: str) -> bool:
        asked.append((namespace, name, uid))
        return False

    w = StatusWriter(still_wanted, backoff=0.01, on_result=outcomes.append)
    try:
        rec = Recorder()
        rec.failures = 5
        w.submit(job(rec, "a", "c1", "x", uid="u9"))
        assert w.flush(WAIT)
        assert len(rec.calls) == 1 and outcomes == ["gone"] and asked == [("ns", "a", "u9")]
        rec.gone = True  # the API says 404: never retried
        w.submit(job(rec, "b", "c2", "x"))
        assert w.flush(WAIT)
        assert len(rec.calls) == 2 and outcomes == ["gone", "gone"]
    finally:
        w.stop(2.0)


def test_a_cancelled_write_that_fails_on_the_wire_is_not_retried(writer: StatusWriter, outcomes: list[str]) -> None:
    rec = Recorder()
    rec.hold.clear()
    rec.failures = 1
    writer.submit(job(rec, "a", "c1", "x"))
    assert rec.entered.wait(WAIT)
    assert writer.cancel("c1")
    rec.hold.set()
    assert rec.wait_calls(1) and writer.flush(WAIT)
    writer.submit(job(rec, "z", "c9", "marker"))  # written after: the cancelled one was not retried before it
    assert writer.flush(WAIT)
    assert [n for n, _, _ in rec.calls] == ["a", "z"] and outcomes == ["retry", "ok"]


def test_stop_tries_waiting_retries_at_once() -> None:
    w = StatusWriter(backoff=3600.0, max_backoff=3600.0)
    rec = Recorder()
    rec.failures = 1
    w.submit(job(rec, "a", "c1", "x"))
    assert rec.wait_calls(1)
    assert not w.flush(0.05)  # waiting an hour for its retry
    w.stop(WAIT)
    assert len(rec.calls) == 2 and w.pending() == 0


def test_bounded_the_oldest_waiting_pod_is_dropped(outcomes: list[str]) -> None:
    w = StatusWriter(max_pending=2, on_result=outcomes.append)
    try:
        rec = Recorder()
        rec.hold.clear()
        w.submit(job(rec, "a", "c1", "on the wire"))
        assert rec.entered.wait(WAIT)
        w.submit(job(rec, "b", "c2", "waits"))  # a (running) and b: the bound
        w.submit(job(rec, "c", "c3", "pushes a out"))
        assert w.pending() == 2 and outcomes == ["dropped"]
        rec.hold.set()
        assert w.flush(WAIT)
        assert [n for n, _, _ in rec.calls] == ["a", "b", "c"]  # a was already on the wire
    finally:
        w.stop(2.0)


def test_a_write_waits_for_no_call_in_flight() -> None:
    calls = InFlight()
    calls.enter()  # a CNI call is being served
    w = StatusWriter(quiet=calls.wait_quiet, max_defer=60.0)
    try:
        rec = Recorder()
        w.submit(job(rec, "a", "c1", "x"))
        assert not w.flush(0.2) and rec.calls == []
        calls.leave()  # its answer is written
        assert w.flush(WAIT) and len(rec.calls) == 1
    finally:
        w.stop(2.0)


def test_a_busy_daemon_still_writes_after_max_defer() -> None:
    calls = InFlight()
    calls.enter()  # and it never ends
    w = StatusWriter(quiet=calls.wait_quiet, max_defer=0.05)
    try:
        rec = Recorder()
        for pod in ("a", "b", "c"):
            w.submit(job(rec, pod, pod, "x"))
        assert w.flush(WAIT) and [n for n, _, _ in rec.calls] == ["a", "b", "c"]
    finally:
        w.stop(2.0)


def test_stop_does_not_wait_out_an_api_that_keeps_failing() -> None:
    w = StatusWriter(backoff=0.01, max_backoff=0.01)
    rec = Recorder()
    rec.failures = 10**6
    w.submit(job(rec, "a", "c1", "x"))
    assert rec.wait_calls(3)  # retrying
    started = time.monotonic()
    w.stop(30.0)
    assert time.monotonic() - started < 10 and w.pending() == 0  # one last try, then dropped
