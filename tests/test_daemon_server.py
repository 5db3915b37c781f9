"""The daemon's request handling: socket permissions, the CNI concurrency rules, readiness,
metrics, graceful shutdown and the conf-dir watcher."""

from __future__ import annotations

import json
import os
import signal
import socket
import stat
import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from metacni.daemon.app import Daemon
from metacni.daemon.config import DaemonConfig
from metacni.daemon.locks import KeyedLocks
from metacni.plugin import PluginInfo, hookimpl
from metacni.testing.daemon import run_shim, start_daemon


class Blocky:
    """A plugin whose ADD/GC wait for the test, recording how many run at once and for whom."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.inside: list[str] = []
        self.max_inside = 0
        self.release = threading.Event()
        self.gc_ran_with: list[list[str]] = []

    @hookimpl
    def cni_plugin_info(self) -> PluginInfo:
        return PluginInfo()

    @hookimpl
    def cni_add(self, request: Any) -> dict[str, Any]:
        cid = request.invocation.container_id
        with self.cond:
            self.inside.append(cid)
            self.max_inside = max(self.max_inside, len(self.inside))
            self.cond.notify_all()
        try:
            assert self.release.wait(30), "test never released the plugin"
        finally:
            with self.cond:
                self.inside.remove(cid)
                self.cond.notify_all()
        return {"cniVersion": "1.1.0", "ips": []}

    @hookimpl
    def cni_del(self, request: Any) -> None:
        return None

    @hookimpl
    def cni_gc(self, request: Any) -> None:
        with self.cond:
            self.gc_ran_with.append(list(self.inside))
            self.cond.notify_all()

    def wait_inside(self, n: int) -> bool:
        with self.cond:
            return self.cond.wait_for(lambda: len(self.inside) >= n, timeout=30)


@pytest.fixture
def served(tmp_path) -> Iterator[tuple[Daemon, Blocky]]:
    cfg = DaemonConfig(socket=str(tmp_path / "run" / "d.sock"), use_api=False, regenerate_config=False,
                       concurrency=2, cache_dir=str(tmp_path / "cache"), gc_period=0)
    daemon = Daemon(cfg)
    plugin = Blocky()
    daemon.registry.register("blocky", plugin)
    daemon.start()
    try:
        yield daemon, plugin
    finally:
        plugin.release.set()
        daemon.stop()


def _request(daemon: Daemon, cid: str, verb: str = "ADD") -> dict[str, Any]:
    env = {"CNI_COMMAND": verb, "CNI_CONTAINERID": cid, "CNI_NETNS": "/proc/self/ns/net", "CNI_IFNAME": "eth0"}
    conf: dict[str, Any] = {"cniVersion": "1.1.0", "name": "blk", "type": "blocky"}
    if verb in ("GC", "STATUS"):
        env = {"CNI_COMMAND": verb}
        conf["cni.dev/valid-attachments"] = []
    done = run_shim({**env, "METACNI_SOCKET": daemon.cfg.socket}, json.dumps(conf).encode())
    return {"exit": done.returncode, "stdout": done.stdout.decode(), "stderr": done.stderr.decode()}


def _in_thread(fn: Any) -> tuple[threading.Thread, list[Any]]:
    out: list[Any] = []
    t = threading.Thread(target=lambda: out.append(fn()), daemon=True)
    t.start()
    return t, out


def test_socket_is_root_only(served):
    daemon, _ = served
    path = Path(daemon.cfg.socket)
    assert stat.S_ISSOCK(path.stat().st_mode)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700


def test_parallel_up_to_the_bound_and_same_container_serialised(served):
    daemon, plugin = served
    threads = [_in_thread(lambda c=c: _request(daemon, c)) for c in ("a", "a", "b", "c")]
    assert plugin.wait_inside(2)
    # Two slots: two different containers inside, never both "a" requests at once.
    with plugin.cond:
        assert len(plugin.inside) == 2 and plugin.inside.count("a") <= 1
    plugin.release.set()
    for t, out in threads:
        t.join(60)
        assert out and out[0]["exit"] == 0, out
    assert plugin.max_inside == 2


def test_gc_is_exclusive(served):
    daemon, plugin = served
    t_add, add_out = _in_thread(lambda: _request(daemon, "x"))
    assert plugin.wait_inside(1)
    t_gc, gc_out = _in_thread(lambda: _request(daemon, "", "GC"))
    plugin.release.set()
    t_gc.join(60)
    t_add.join(60)
    assert gc_out[0]["exit"] == 0 and add_out[0]["exit"] == 0
    assert plugin.gc_ran_with == [[]]  # GC ran only once no ADD was inside


def test_errors_are_cni_errors_and_unknown_types_named(served):
    daemon, _ = served
    env = {"CNI_COMMAND": "ADD", "CNI_CONTAINERID": "z", "CNI_NETNS": "/x", "CNI_IFNAME": "eth0"}
    conf = {"cniVersion": "1.0.0", "name": "n", "type": "nope"}
    done = run_shim({**env, "METACNI_SOCKET": daemon.cfg.socket}, json.dumps(conf).encode())
    reply = {"exit": done.returncode, "stdout": done.stdout.decode()}
    assert reply["exit"] == 1
    err = json.loads(reply["stdout"])
    assert err["code"] == 7 and "nope" in err["details"] and err["cniVersion"] == "1.0.0"
    assert reply["stdout"].count("\n") == 1


def test_keyed_locks_are_dropped_when_unused():
    locks = KeyedLocks()
    with locks.hold("a"), locks.hold("b"):
        assert len(locks) == 2
    assert len(locks) == 0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _get(port: int, path: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def _conflist(name: str, subnet: str, data: Path) -> str:
    return json.dumps({"cniVersion": "1.0.0", "name": name, "plugins": [
        {"type": "bridge", "bridge": "cni0", "ipam": {"type": "host-local", "dataDir": str(data),
                                                      "ranges": [[{"subnet": subnet}]]}}]})


def test_readiness_metrics_config_and_graceful_shutdown(tmp_path):
    conf_dir = tmp_path / "net.d"
    conf_dir.mkdir()
    (conf_dir / "10-primary.conflist").write_text(_conflist("primary", "10.81.0.0/24", tmp_path / "ipam"))
    indicator = tmp_path / "primary-ready"
    port = _free_port()
    d = start_daemon(tmp_path / "d", wait=False, args=[
        "--no-api", "--conf-dir", str(conf_dir), "--cache-dir", str(tmp_path / "cache"),
        "--metrics-port", str(port), "--metrics-host", "127.0.0.1", "--readiness-indicator-file", str(indicator),
        "--ready-timeout", "0.2"])
    try:
        node_conf = conf_dir / "00-metacni.conf"
        # The watcher writes the node config from the primary...
        deadline_ok = _wait(lambda: node_conf.exists() and "ready" in d.status())
        assert deadline_ok, d.log_text()
        assert json.loads(node_conf.read_text())["clusterNetwork"].endswith("10-primary.conflist")
        # ...but without the primary's readiness indicator the daemon is not ready.
        assert d.status()["ready"] is False
        assert _get(port, "/healthz")[0] == 200
        code, body = _get(port, "/readyz")
        assert code == 500 and json.loads(body)["readinessIndicator"] is False
        env = {"CNI_COMMAND": "ADD", "CNI_CONTAINERID": "r1", "CNI_NETNS": "/proc/self/ns/net",
               "CNI_IFNAME": "eth0", "METACNI_SOCKET": d.socket}
        out = run_shim(env, _conflist("primary", "10.81.0.0/24", tmp_path / "ipam").encode())
        assert out.returncode == 1 and json.loads(out.stdout)["code"] == 11
        status_env = {"CNI_COMMAND": "STATUS", "METACNI_SOCKET": d.socket}
        out = run_shim(status_env, b'{"cniVersion":"1.1.0","name":"s","type":"bridge"}')
        assert json.loads(out.stdout)["code"] == 50 and b"readiness indicator" in out.stdout
        indicator.write_text("ok")
        assert _wait(lambda: d.status()["ready"] is True)
        assert _get(port, "/readyz")[0] == 200
        metrics = _get(port, "/metrics")[1].decode()
        assert 'metacni_requests_total{network="primary",result="error11",verb="ADD"} 1.0' in metrics
        assert "metacni_request_duration_seconds_bucket" in metrics
        # The primary changes: a lexically earlier conflist appears; the node config follows.
        (conf_dir / "05-other.conflist").write_text(_conflist("other", "10.82.0.0/24", tmp_path / "ipam"))
        assert _wait(lambda: json.loads(node_conf.read_text())["clusterNetwork"].endswith("05-other.conflist"))
        # Another CNI renames our file away (Cilium exclusive mode, Multus #972): it comes back.
        node_conf.rename(conf_dir / "00-metacni.conf.cilium_bak")
        assert _wait(lambda: node_conf.exists())
        # Graceful stop: exit 0, socket gone (new shims fall back at once), config kept.
        assert d.stop() == 0
        assert not os.path.exists(d.socket)
        assert json.loads(node_conf.read_text())["type"] == "metacni"
        records = d.log_records()
        assert any(r.get("msg") == "shutting down" for r in records)
        assert all({"ts", "level", "logger", "msg"} <= set(r) for r in records)
    finally:
        d.kill()


def test_sigterm_delivered_to_another_thread_is_handled(tmp_path):
    """The kernel may deliver a process's SIGTERM to any thread; the daemon must still stop."""
    import ctypes
    import platform

    if platform.machine() != "x86_64":
        pytest.skip("tgkill's syscall number is the x86_64 one")
    d = start_daemon(tmp_path / "d", args=["--no-api", "--no-regenerate-config", "--cache-dir", str(tmp_path / "c")])
    try:
        pid = d.proc.pid
        others = [int(t) for t in os.listdir(f"/proc/{pid}/task") if int(t) != pid]
        assert others, "the daemon runs worker threads"
        libc = ctypes.CDLL(None, use_errno=True)
        sys_tgkill = 234  # x86_64
        assert libc.syscall(sys_tgkill, pid, others[0], signal.SIGTERM) == 0, ctypes.get_errno()
        assert d.proc.wait(30) == 0
    finally:
        d.kill()


def _wait(cond: Any, timeout: float = 30.0) -> bool:
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if cond():
                return True
        except (OSError, ValueError):
            pass
        time.sleep(0.05)
    return False


def test_sigterm_is_handled(tmp_path):
    d = start_daemon(tmp_path / "d", args=["--no-api", "--no-regenerate-config", "--cache-dir", str(tmp_path / "c")])
    try:
        d.proc.send_signal(signal.SIGTERM)
        assert d.proc.wait(30) == 0
    finally:
        d.kill()
