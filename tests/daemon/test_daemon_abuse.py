"""The daemon's socket and HTTP endpoints under abuse (issue #14 item 7): foreign peers, clients
that never send or lie about their length, idle connection floods, clients that give up
mid-ADD, and worker threads the kernel will not start."""

from __future__ import annotations

import contextlib
import json
import os
import re
import resource
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from metacni.daemon.app import Daemon
from metacni.daemon.config import DaemonConfig
from metacni.daemon.httpserve import HTTPServer, Limits, Reply
from metacni.daemon.server import CNIRoutes, UnixServer
from metacni_testkit import unixhttp
from metacni_testkit.daemon import start_daemon
from tests.daemon.test_daemon_server import CONF, Blocky

ADD_ENV = {"CNI_COMMAND": "ADD", "CNI_NETNS": "/proc/self/ns/net", "CNI_IFNAME": "eth0"}


def wait_for(cond: Callable[[], Any], timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.01)
    return bool(cond())


def env(verb: str, cid: str) -> dict[str, str]:
    return {**ADD_ENV, "CNI_COMMAND": verb, "CNI_CONTAINERID": cid}


def metric(daemon: Daemon, name: str, **labels: str) -> float:
    value = daemon.metrics.registry.get_sample_value(name, labels)
    return float(value or 0.0)


def event_count(daemon: Daemon, event: str, server: str = "cni") -> float:
    return metric(daemon, "metacni_http_events_total", server=server, event=event)


@pytest.fixture
def make(tmp_path) -> Iterator[Callable[..., tuple[Daemon, Blocky]]]:
    started: list[tuple[Daemon, Blocky]] = []

    def build(before_start: Callable[[Daemon], None] | None = None, **overrides: Any) -> tuple[Daemon, Blocky]:
        run = Path(tempfile.mkdtemp(prefix="mcabuse-", dir="/tmp"))
        values: dict[str, Any] = {"socket": str(run / "d.sock"), "use_api": False, "regenerate_config": False,
                                  "concurrency": 2, "cache_dir": str(tmp_path / "cache"), "gc_period": 0,
                                  "pending_dir": str(tmp_path / "pending")}
        values.update(overrides)
        daemon = Daemon(DaemonConfig(**values))
        plugin = Blocky()
        daemon.registry.register("blocky", plugin)
        if before_start is not None:
            before_start(daemon)
        daemon.start()
        started.append((daemon, plugin))
        return daemon, plugin

    yield build
    for daemon, plugin in started:
        plugin.release.set()
        daemon.stop()
        with contextlib.suppress(OSError):
            os.rmdir(os.path.dirname(daemon.cfg.socket))


# ---------------------------------------------------------------------- peers
REFUSED_CLIENT = r"""
import socket, os, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
os.setgroups([]); os.setgid(65534); os.setuid(65534)  # before connect: SO_PEERCRED is taken there
s.settimeout(10)
s.connect(sys.argv[1])
try:  # the daemon may close the connection before or after this is sent
    s.sendall(b"GET /healthz HTTP/1.1\r\nHost: metacni\r\nConnection: close\r\n\r\n")
    data = s.recv(4096)
except (BrokenPipeError, ConnectionResetError):
    data = b""
print(repr(data))
"""


def test_non_root_peer_is_refused(make):
    daemon, _ = make()
    path = daemon.cfg.socket
    # Let uid 65534 reach the socket at all (the daemon makes it 0600 in a 0700 directory), so
    # that it is the peer-credential check that turns it away.
    os.chmod(os.path.dirname(path), 0o755)
    os.chmod(path, 0o666)
    out = subprocess.run([sys.executable, "-I", "-S", "-c", REFUSED_CLIENT, path], capture_output=True,
                         timeout=30, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "b''", out.stdout  # closed unanswered
    assert event_count(daemon, "refused_peer") == 1
    # root is served on the same socket
    assert unixhttp.request(path, "GET", "/healthz").status == 200


# ---------------------------------------------------------------------- timeouts and lengths
def test_client_that_never_sends_is_closed_after_the_read_timeout(make):
    daemon, _ = make(read_timeout=0.5)
    path = daemon.cfg.socket
    t0 = time.monotonic()
    with unixhttp.connect(path, timeout=10) as idle:
        # Served meanwhile: the idle client holds no thread.
        assert unixhttp.request(path, "GET", "/healthz").status == 200
        answer = unixhttp.read_answer(idle)
    assert answer.status == 408
    assert time.monotonic() - t0 < 5
    assert event_count(daemon, "read_timeout") == 1


def test_trickling_client_gets_no_more_than_the_read_timeout(make):
    """The deadline covers the whole request: a byte now and then does not extend it."""
    daemon, _ = make(read_timeout=1.0)
    t0 = time.monotonic()
    data = unixhttp.head("POST", "/cni", unixhttp.cni_headers(), 10)
    closed = False
    with unixhttp.connect(daemon.cfg.socket, timeout=10) as sock:
        for byte in data:
            try:
                sock.send(bytes([byte]))
            except OSError:
                closed = True
                break
            time.sleep(0.1)  # the client's pace is the test's subject, not a synchronisation
    assert closed, "the daemon kept listening to a trickling client"
    assert time.monotonic() - t0 < 5
    assert event_count(daemon, "read_timeout") == 1


def test_client_that_never_reads_its_answer_is_dropped_after_the_write_timeout(make):
    daemon, plugin = make(write_timeout=0.5)
    plugin.release.set()
    plugin.result = {"cniVersion": "1.1.0", "dns": {"search": ["x" * 1000] * 8000}}  # ~8 MB
    sock = unixhttp.send_cni(daemon.cfg.socket, env("ADD", "deaf"), CONF)
    try:
        assert wait_for(lambda: event_count(daemon, "write_failed") == 1, 20)
        assert wait_for(lambda: _in_flight(daemon) == 0)
    finally:
        sock.close()
    plugin.result = {"cniVersion": "1.1.0", "ips": []}
    assert unixhttp.cni(daemon.cfg.socket, env("ADD", "next"), CONF).status == 200


def test_huge_content_length_is_413_without_reading_the_body(make):
    daemon, plugin = make(read_timeout=30)
    t0 = time.monotonic()
    with unixhttp.connect(daemon.cfg.socket) as sock:
        sock.sendall(unixhttp.head("POST", "/cni", unixhttp.cni_headers(), 1 << 40))
        answer = unixhttp.read_answer(sock)
    assert time.monotonic() - t0 < 5  # answered from the head, long before the read timeout
    assert answer.status == 413 and answer.headers["metacni-protocol"] == "1"
    err = answer.json()
    assert err["code"] == 7 and err["msg"] == "config too large"
    assert plugin.calls == []
    assert event_count(daemon, "too_large") == 1


def test_body_over_one_mib_without_a_length_is_413(make):
    daemon, _ = make()
    chunk = b"x" * 65536
    with unixhttp.connect(daemon.cfg.socket) as sock:
        sock.sendall(unixhttp.head("POST", "/cni", {**unixhttp.cni_headers(), "Transfer-Encoding": "chunked"}))
        with contextlib.suppress(OSError):  # the daemon may close while we still send
            for _ in range(17):
                sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        answer = unixhttp.read_answer(sock)
    assert answer.status == 413 and answer.json()["code"] == 7


def test_a_body_of_exactly_one_mib_is_read(make):
    daemon, _ = make()
    body = b" " * (1024 * 1024)
    answer = unixhttp.request(daemon.cfg.socket, "POST", "/cni", body, unixhttp.cni_headers())
    assert answer.status == 400 and answer.json()["code"] == 6  # read and parsed, not refused


# ---------------------------------------------------------------------- bounds
def test_200_idle_connections_while_adds_are_served(make):
    daemon, plugin = make(read_timeout=120)  # the idle ones stay for the whole test
    plugin.release.set()
    idle = [unixhttp.connect(daemon.cfg.socket) for _ in range(200)]
    try:
        for i in range(5):
            t0 = time.monotonic()
            answer = unixhttp.cni(daemon.cfg.socket, env("ADD", f"idle-{i}"), CONF, timeout=10)
            assert answer.status == 200, answer.body
            assert time.monotonic() - t0 < 5
        assert [cid for verb, cid in plugin.calls if verb == "ADD"] == [f"idle-{i}" for i in range(5)]
        # the idle ones are still open (held by the I/O loop, not by threads)
        assert all(c.fileno() >= 0 for c in idle)
        assert event_count(daemon, "read_timeout") == 0
    finally:
        for c in idle:
            c.close()


def test_connections_beyond_the_bound_wait_in_the_backlog(make):
    daemon, _ = make(max_connections=4)
    path = daemon.cfg.socket
    idle = [unixhttp.connect(path) for _ in range(4)]
    assert wait_for(lambda: not daemon.server.http.listening)  # type: ignore[union-attr]
    waiting = unixhttp.connect(path, timeout=20)  # connects: the kernel's backlog holds it
    waiting.sendall(unixhttp.head("GET", "/healthz"))
    for c in idle:
        c.close()
    answer = unixhttp.read_answer(waiting)
    waiting.close()
    assert answer.status == 200


def test_full_queue_is_answered_503_at_once(make):
    daemon, plugin = make(concurrency=1, workers=1, queue_size=1)
    path = daemon.cfg.socket
    busy = unixhttp.send_cni(path, env("ADD", "q-busy"), CONF)
    assert plugin.wait_inside(1)
    queued = unixhttp.send_cni(path, env("ADD", "q-queued"), CONF)
    assert wait_for(lambda: daemon.server.http.queued() == 1)  # type: ignore[union-attr]
    refused = unixhttp.cni(path, env("ADD", "q-refused"), CONF, timeout=10)
    assert refused.status == 503 and refused.json()["code"] == 11 and "queue full" in refused.json()["msg"]
    plugin.release.set()
    assert unixhttp.read_answer(busy).status == 200
    assert unixhttp.read_answer(queued).status == 200
    busy.close()
    queued.close()
    assert event_count(daemon, "queue_full") == 1


# ---------------------------------------------------------------------- abandoned calls
def _held_slot(daemon: Daemon, plugin: Blocky) -> socket.socket:
    """One ADD inside the plugin, holding the only CNI slot (concurrency=1)."""
    busy = unixhttp.send_cni(daemon.cfg.socket, env("ADD", "holder"), CONF)
    assert plugin.wait_inside(1)
    return busy


def _in_flight(daemon: Daemon) -> float:
    return metric(daemon, "metacni_requests_in_flight")


def test_abandoned_add_never_runs_after_the_del(make):
    daemon, plugin = make(concurrency=1)
    path = daemon.cfg.socket
    busy = _held_slot(daemon, plugin)
    cid = f"gone-{uuid.uuid4().hex[:8]}"
    add = unixhttp.send_cni(path, env("ADD", cid), CONF)  # queued behind the slot
    assert wait_for(lambda: _in_flight(daemon) == 2)
    add.close()  # the shim timed out and went away
    result: list[unixhttp.Answer] = []
    t = threading.Thread(target=lambda: result.append(unixhttp.cni(path, env("DEL", cid), CONF)), daemon=True)
    t.start()
    assert wait_for(lambda: _in_flight(daemon) == 3)  # the DEL is in, waiting for the container lock
    plugin.release.set()
    t.join(30)
    assert result and result[0].status == 200
    assert unixhttp.read_answer(busy).status == 200
    busy.close()
    assert wait_for(lambda: _in_flight(daemon) == 0)
    assert plugin.calls == [("ADD", "holder"), ("DEL", cid)]
    assert metric(daemon, "metacni_requests_total", verb="ADD", network="blk", result="error11") == 1


def test_del_waits_for_an_abandoned_add_already_running(make):
    """An ADD whose client left while its plugins run is finished (stopping it halfway would
    leave half an attachment); the DEL of that container runs after it and removes it all."""
    daemon, plugin = make()
    cid = f"mid-{uuid.uuid4().hex[:8]}"
    add = unixhttp.send_cni(daemon.cfg.socket, env("ADD", cid), CONF)
    assert plugin.wait_inside(1)
    add.close()
    delete = unixhttp.send_cni(daemon.cfg.socket, env("DEL", cid), CONF)
    assert wait_for(lambda: _in_flight(daemon) == 2)
    assert plugin.calls == [("ADD", cid)]  # the DEL waits for the container's lock
    plugin.release.set()
    assert unixhttp.read_answer(delete).status == 200
    delete.close()
    assert plugin.calls == [("ADD", cid), ("DEL", cid)]


def test_add_superseded_by_a_del_is_answered_code_11(make):
    """The ADD's client still waits, but a DEL of its container came in after it: the ADD is
    not started (it would create what the DEL was meant to remove)."""
    daemon, plugin = make(concurrency=1)
    path = daemon.cfg.socket
    busy = _held_slot(daemon, plugin)
    add = unixhttp.send_cni(path, env("ADD", "sup"), CONF)
    assert wait_for(lambda: _in_flight(daemon) == 2)
    delete = unixhttp.send_cni(path, env("DEL", "sup"), CONF)
    assert wait_for(lambda: _in_flight(daemon) == 3)
    plugin.release.set()
    add_answer, del_answer = unixhttp.read_answer(add), unixhttp.read_answer(delete)
    for s in (busy, add, delete):
        s.close()
    assert add_answer.status == 503
    err = add_answer.json()
    assert err["code"] == 11 and "DEL of the same container arrived after it" in err["msg"]
    assert del_answer.status == 200
    assert plugin.calls == [("ADD", "holder"), ("DEL", "sup")]


def test_add_whose_client_left_is_not_started(make):
    daemon, plugin = make(concurrency=1)
    busy = _held_slot(daemon, plugin)
    add = unixhttp.send_cni(daemon.cfg.socket, env("ADD", "left"), CONF)
    assert wait_for(lambda: _in_flight(daemon) == 2)
    add.close()
    plugin.release.set()
    assert unixhttp.read_answer(busy).status == 200
    busy.close()
    assert wait_for(lambda: _in_flight(daemon) == 0)
    assert plugin.calls == [("ADD", "holder")]


def test_queued_add_is_not_started_once_shutdown_begins(make):
    daemon, plugin = make(concurrency=1)
    busy = _held_slot(daemon, plugin)
    queued = unixhttp.send_cni(daemon.cfg.socket, env("ADD", "late"), CONF)
    assert wait_for(lambda: _in_flight(daemon) == 2)
    stopper = threading.Thread(target=daemon.stop, daemon=True)
    stopper.start()
    assert daemon.stopping.wait(10)
    plugin.release.set()
    answer = unixhttp.read_answer(queued)
    assert answer.status == 503 and "shutting down" in answer.json()["msg"] and answer.json()["code"] == 11
    assert unixhttp.read_answer(busy).status == 200  # the call in flight finished
    stopper.join(30)
    for s in (busy, queued):
        s.close()
    assert plugin.calls == [("ADD", "holder")]


def test_half_closed_client_is_still_served(make):
    """A shim may shut down its sending side after the request: that is not going away."""
    daemon, plugin = make()
    plugin.release.set()
    sock = unixhttp.send_cni(daemon.cfg.socket, env("ADD", "half"), CONF)
    sock.shutdown(socket.SHUT_WR)
    answer = unixhttp.read_answer(sock)
    sock.close()
    assert answer.status == 200 and ("ADD", "half") in plugin.calls


# ---------------------------------------------------------------------- the accept loop
def _quick(request: Any, abandoned: Any) -> Reply:
    return Reply(200, b"{}\n")


def test_accept_loop_survives_thread_start_failures(tmp_path):
    """The worker pool's thread factory is the seam: the first starts fail as they do when the
    kernel refuses a thread (RuntimeError "can't start new thread"); the request waits, the
    loop backs off, and it is served once a thread starts."""
    failures = []

    def flaky(*args: Any, **kwargs: Any) -> threading.Thread:
        if len(failures) < 3:
            failures.append(1)
            raise RuntimeError("can't start new thread")
        return threading.Thread(*args, **kwargs)

    events: list[str] = []
    server = UnixServer(tmp_path / "run" / "s.sock", _quick, lambda params: {"ready": True},
                        events=events.append, thread_factory=flaky)
    server.start()
    try:
        answer = unixhttp.cni(server.path, env("DEL", "t"), CONF, timeout=20)
        assert answer.status == 200
        assert events.count("thread_start_failed") == 3
        assert server.healthy()
        assert unixhttp.request(server.path, "GET", "/healthz").status == 200
    finally:
        server.stop(5)


class _BuggyRoutes(CNIRoutes):
    def __init__(self) -> None:
        super().__init__(_quick, lambda params: {"ready": True})
        self.failures = 1

    def received(self, request: Any) -> None:
        if self.failures:
            self.failures -= 1
            raise KeyError("a bug")
        super().received(request)


def test_an_error_in_the_loop_answers_500_and_the_loop_goes_on(tmp_path):
    path = str(tmp_path / "s.sock")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(16)
    events: list[str] = []
    server = HTTPServer(listener, _BuggyRoutes(), Limits(), events=events.append)
    server.start()
    try:
        assert unixhttp.cni(path, env("DEL", "b1"), CONF, timeout=10).status == 500
        assert unixhttp.cni(path, env("DEL", "b2"), CONF, timeout=10).status == 200
        assert events == ["loop_error"] and server.healthy()
    finally:
        server.stop(5)
        listener.close()


class _Fatal(BaseException):
    pass


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _get(port: int, path: str) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def test_dead_accept_loop_turns_healthz_unhealthy(make):
    """Should the socket's I/O loop end anyway (here: something it cannot catch), liveness says so."""
    def fatal(*args: Any, **kwargs: Any) -> threading.Thread:
        raise _Fatal()

    def seam(daemon: Daemon) -> None:
        daemon.server.thread_factory = fatal

    port = _free_port()
    daemon, _ = make(before_start=seam, metrics_port=port, metrics_host="127.0.0.1")
    assert _get(port, "/healthz") == 200
    with contextlib.suppress(OSError):
        unixhttp.cni(daemon.cfg.socket, env("DEL", "f"), CONF, timeout=2)
    assert wait_for(lambda: not daemon.server.healthy())
    assert _get(port, "/healthz") == 500
    with pytest.raises(ConnectionRefusedError):  # refused at once, not left in the backlog
        unixhttp.connect(daemon.cfg.socket).close()


PIDS_ROOT = Path("/sys/fs/cgroup/pids")


def test_daemon_survives_the_kernel_refusing_threads(tmp_path):
    """A real limit: the daemon process in a pids cgroup with no room for another thread. CNI
    calls wait (no worker can start), the socket still answers /healthz, and once room is made
    every waiting call is served."""
    if not (PIDS_ROOT / "cgroup.procs").exists() or not os.access(PIDS_ROOT, os.W_OK):
        pytest.skip("no writable cgroup v1 pids hierarchy")
    indicator = tmp_path / "ready"
    # Not ready until the indicator exists, and not asked /readyz (a worker's job): so no worker
    # thread exists yet when the limit is set. ADDs then need a worker, and wait for readiness.
    d = start_daemon(tmp_path / "d", wait=False, args=[
        "--no-api", "--no-regenerate-config", "--cache-dir", str(tmp_path / "c"), "--pending-dir",
        str(tmp_path / "p"), "--gc-period", "0", "--readiness-indicator-file", str(indicator),
        "--ready-timeout", "60"])
    group = PIDS_ROOT / f"metacni-test-{uuid.uuid4().hex[:12]}"
    group.mkdir()
    answers: list[int] = []
    try:
        def healthz() -> bool:
            with contextlib.suppress(OSError):
                return unixhttp.request(d.socket, "GET", "/healthz", timeout=5).status == 200
            return False

        assert wait_for(healthz, 60), d.log_text()
        (group / "cgroup.procs").write_text(str(d.proc.pid))
        (group / "pids.max").write_text((group / "pids.current").read_text().strip())
        conf = json.dumps({"cniVersion": "1.0.0", "name": "n", "type": "nope"}).encode()

        def call(i: int) -> None:
            answers.append(unixhttp.cni(d.socket, env("ADD", f"k{i}"), conf, timeout=60).status)

        threads = [threading.Thread(target=call, args=(i,), daemon=True) for i in range(4)]
        for t in threads:
            t.start()
        assert wait_for(lambda: "could not start a worker thread" in d.log_text(), 30), d.log_text()
        assert int(re.findall(r"max (\d+)", (group / "pids.events").read_text())[0]) > 0  # the kernel said no
        assert healthz()  # the accept loop lives on
        assert answers == []
        (group / "pids.max").write_text("max")
        indicator.write_text("ok")
        for t in threads:
            t.join(60)
        assert answers == [400] * 4  # served (the plugin type is unknown: a CNI error, not a hang)
    finally:
        with contextlib.suppress(OSError):
            (PIDS_ROOT / "cgroup.procs").write_text(str(d.proc.pid))
        d.kill()
        with contextlib.suppress(OSError):
            group.rmdir()


def test_daemon_survives_running_out_of_file_descriptors(tmp_path):
    """A real limit: RLIMIT_NOFILE of the daemon process leaves room for a few connections only.
    accept() fails with EMFILE; the loop pauses and goes on, and serves again once clients leave."""
    d = start_daemon(tmp_path / "d", args=["--no-api", "--no-regenerate-config", "--cache-dir", str(tmp_path / "c"),
                                           "--pending-dir", str(tmp_path / "p"), "--gc-period", "0"])
    clients: list[socket.socket] = []
    try:
        pid = d.proc.pid
        room = len(os.listdir(f"/proc/{pid}/fd")) + 3
        resource.prlimit(pid, resource.RLIMIT_NOFILE, (room, room))
        clients = [unixhttp.connect(d.socket) for _ in range(12)]  # the backlog takes them all
        assert wait_for(lambda: "accept failed (EMFILE)" in d.log_text(), 30), d.log_text()
        for c in clients:
            c.close()
        answer = unixhttp.request(d.socket, "GET", "/healthz", timeout=20)
        assert answer.status == 200
        assert unixhttp.request(d.socket, "GET", "/readyz", timeout=20).json()["ready"] is True
        assert d.proc.poll() is None
    finally:
        for c in clients:
            c.close()
        d.kill()


# ---------------------------------------------------------------------- the TCP health server
def test_health_port_has_the_same_bounds(make):
    port = _free_port()
    daemon, _ = make(metrics_port=port, metrics_host="127.0.0.1", read_timeout=0.5)
    assert daemon.health.sock.getsockname() == ("127.0.0.1", port)
    idle = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(100)]
    try:
        assert _get(port, "/healthz") == 200  # 100 idle clients hold no thread
        for c in idle:
            assert c.recv(4096).startswith(b"HTTP/1.1 408")  # and each is closed at the deadline
    finally:
        for c in idle:
            c.close()
    assert event_count(daemon, "read_timeout", server="health") == 100
    with socket.create_connection(("127.0.0.1", port), timeout=10) as c:
        c.sendall(b"POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999\r\n\r\n")
        assert c.recv(4096).startswith(b"HTTP/1.1 413")


def test_metrics_host_defaults_to_loopback():
    assert DaemonConfig().metrics_host == "127.0.0.1"
