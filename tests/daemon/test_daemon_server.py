"""The daemon's request handling: socket permissions, the CNI concurrency rules, readiness,
metrics, graceful shutdown and the conf-dir watcher."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import stat
import subprocess
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import metacni
from metacni.daemon.app import Daemon
from metacni.daemon.config import DaemonConfig
from metacni.daemon.locks import KeyedLocks
from metacni.daemon.protocol import CNIRequest, decode_request, encode_request, record_name
from metacni.plugin import PluginInfo, hookimpl
from metacni.spec.versions import ALL_VERSIONS
from metacni_testkit import unixhttp
from metacni_testkit.daemon import start_daemon


class Blocky:
    """A plugin whose ADD/GC wait for the test, recording how many run at once and for whom."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.inside: list[str] = []
        self.max_inside = 0
        self.release = threading.Event()
        self.gc_ran_with: list[list[str]] = []
        self.calls: list[tuple[str, str]] = []  # (verb, container id) in the order they started
        self.result: dict[str, Any] = {"cniVersion": "1.1.0", "ips": []}

    @hookimpl
    def cni_plugin_info(self) -> PluginInfo:
        return PluginInfo()

    @hookimpl
    def cni_add(self, request: Any) -> dict[str, Any]:
        cid = request.invocation.container_id
        with self.cond:
            self.calls.append(("ADD", cid))
            self.inside.append(cid)
            self.max_inside = max(self.max_inside, len(self.inside))
            self.cond.notify_all()
        try:
            assert self.release.wait(30), "test never released the plugin"
        finally:
            with self.cond:
                self.inside.remove(cid)
                self.cond.notify_all()
        return self.result

    @hookimpl
    def cni_del(self, request: Any) -> None:
        with self.cond:
            self.calls.append(("DEL", request.invocation.container_id))
            self.cond.notify_all()

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
                       concurrency=2, cache_dir=str(tmp_path / "cache"), gc_period=0,
                       pending_dir=str(tmp_path / "pending"))
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
    answer = unixhttp.cni(daemon.cfg.socket, env, json.dumps(conf).encode())
    return {"exit": 0 if answer.status == 200 else 1, "stdout": answer.body.decode()}


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


def test_calls_are_in_flight_until_their_answer_is_written(served):
    """What the network-status writer waits on: a CNI call counts from its arrival until its
    answer is out, errors and probes included or not as they should be."""
    daemon, plugin = served
    quiet = daemon.server.routes.in_flight.wait_quiet
    assert quiet(0)
    t, out = _in_thread(lambda: _request(daemon, "a"))
    assert plugin.wait_inside(1)
    assert not quiet(0.05)  # the ADD is in the plugin
    assert unixhttp.request(daemon.cfg.socket, "GET", "/readyz").status == 200  # a probe is no call
    plugin.release.set()
    t.join(30)
    assert out and out[0]["exit"] == 0
    assert quiet(10)
    env = {"CNI_COMMAND": "ADD", "CNI_CONTAINERID": "b", "CNI_NETNS": "/proc/self/ns/net", "CNI_IFNAME": "eth0"}
    failed = unixhttp.cni(daemon.cfg.socket, env, b'{"cniVersion": "1.1.0", "name": "n", "type": "no-such"}')
    assert failed.status == 400  # an error answer leaves too
    assert unixhttp.request(daemon.cfg.socket, "POST", "/cni", b"{not json").status >= 400
    assert quiet(10)


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
    answer = unixhttp.cni(daemon.cfg.socket, env, json.dumps(conf).encode())
    assert answer.status == 400  # a CNI error the plugin side returned: the shim exits 1
    err = answer.json()
    assert err["code"] == 7 and "nope" in err["details"] and err["cniVersion"] == "1.0.0"
    assert answer.body.count(b"\n") == 1


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
        "--ready-timeout", "0.2", "--pending-dir", str(tmp_path / "pending")])
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
               "CNI_IFNAME": "eth0"}
        out = unixhttp.cni(d.socket, env, _conflist("primary", "10.81.0.0/24", tmp_path / "ipam").encode())
        assert out.status == 503 and out.json()["code"] == 11  # not ready: the runtime retries
        out = unixhttp.cni(d.socket, {"CNI_COMMAND": "STATUS"}, b'{"cniVersion":"1.1.0","name":"s","type":"bridge"}')
        assert out.status == 400 and out.json()["code"] == 50 and b"readiness indicator" in out.body
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
    d = start_daemon(tmp_path / "d", args=["--no-api", "--no-regenerate-config", "--cache-dir", str(tmp_path / "c"),
                                           "--pending-dir", str(tmp_path / "p")])
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
    d = start_daemon(tmp_path / "d", args=["--no-api", "--no-regenerate-config", "--cache-dir", str(tmp_path / "c"),
                                           "--pending-dir", str(tmp_path / "p")])
    try:
        d.proc.send_signal(signal.SIGTERM)
        assert d.proc.wait(30) == 0
    finally:
        d.kill()


# ---------------------------------------------------------------------- protocol v1 on the socket
CONF = json.dumps({"cniVersion": "1.1.0", "name": "blk", "type": "blocky"}).encode()


def test_version_healthz_readyz(served):
    daemon, _ = served
    path = daemon.cfg.socket
    v = unixhttp.request(path, "GET", "/version")
    assert v.status == 200 and v.headers["metacni-protocol"] == "1"
    assert v.json() == {"protocol": 1, "version": metacni.__version__, "cniVersions": list(ALL_VERSIONS)}
    h = unixhttp.request(path, "GET", "/healthz")
    assert (h.status, h.body) == (200, b"ok\n")
    r = unixhttp.request(path, "GET", "/readyz")
    assert r.status == 200 and r.json()["ready"] is True


def test_operators_can_use_curl(served):
    daemon, _ = served
    out = subprocess.run(["curl", "-sS", "--max-time", "10", "--unix-socket", daemon.cfg.socket,
                          "http://metacni/version"], capture_output=True, timeout=30)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["protocol"] == 1


@pytest.mark.parametrize("spoken", [None, "0", "2", "1.0"])
def test_a_shim_of_another_protocol_gets_code_11(served, spoken):
    daemon, plugin = served
    env = {"CNI_COMMAND": "ADD", "CNI_CONTAINERID": "p", "CNI_NETNS": "/proc/self/ns/net", "CNI_IFNAME": "eth0"}
    answer = unixhttp.cni(daemon.cfg.socket, env, CONF, protocol=spoken)
    assert answer.status == 400 and answer.headers["metacni-protocol"] == "1"
    err = answer.json()
    assert err["code"] == 11
    assert err["msg"] == f"shim speaks protocol {spoken or 'none'}, daemon speaks 1: reinstall the shim"
    assert plugin.calls == []  # nothing ran


@pytest.mark.parametrize(("method", "target", "status"), [
    ("GET", "/cni", 405), ("GET", "/nope", 404), ("DELETE", "/version", 405), ("POST", "/healthz", 405)])
def test_every_answer_carries_the_protocol_header(served, method, target, status):
    """A new shim treats an answer without ``Metacni-Protocol: 1`` as an old daemon: so every
    answer of this daemon has it, errors included."""
    daemon, _ = served
    answer = unixhttp.request(daemon.cfg.socket, method, target)
    assert answer.status == status and answer.headers["metacni-protocol"] == "1"


@pytest.mark.parametrize(("body", "names"), [
    (b"{not json", "not valid JSON"),
    (b"[1, 2]", "must be a JSON object"),
    (b'{"env": {"CNI_COMMAND": 1}, "config": ""}', '"env"'),
    (b'{"env": {}, "config": "!!!"}', '"config"'),
    (b'{"env": {}, "config": 5}', '"config"'),
    (b'{"env": {"CNI_COMMAND": "AD\xff"}, "config": ""}', "not valid JSON"),  # invalid UTF-8
    (b'[' * 100_000, "not valid JSON"),
])
def test_undecodable_requests_are_code_6(served, body, names):
    daemon, plugin = served
    answer = unixhttp.request(daemon.cfg.socket, "POST", "/cni", body, unixhttp.cni_headers())
    assert answer.status == 400
    err = answer.json()
    assert err["code"] == 6 and names in err["msg"], err
    assert plugin.calls == []


def test_http_status_follows_the_outcome(served):
    daemon, plugin = served
    plugin.release.set()
    env = {"CNI_COMMAND": "ADD", "CNI_CONTAINERID": "s1", "CNI_NETNS": "/proc/self/ns/net", "CNI_IFNAME": "eth0"}
    ok = unixhttp.cni(daemon.cfg.socket, env, CONF)
    assert ok.status == 200 and ok.json()["cniVersion"] == "1.1.0"
    deleted = unixhttp.cni(daemon.cfg.socket, {**env, "CNI_COMMAND": "DEL"}, CONF)
    assert (deleted.status, deleted.body) == (200, b"")  # a successful DEL prints nothing
    bad = unixhttp.cni(daemon.cfg.socket, {**env, "CNI_NETNS": ""}, CONF)
    assert bad.status == 400 and bad.json()["code"] == 4


# ---------------------------------------------------------------------- pending DELs
class SocketWatcher(Blocky):
    """Records, for each DEL, whether the daemon's socket existed when it ran."""

    def __init__(self, socket_path: str) -> None:
        super().__init__()
        self.socket_path = socket_path
        self.socket_existed: list[bool] = []

    @hookimpl
    def cni_del(self, request: Any) -> None:
        self.socket_existed.append(os.path.exists(self.socket_path))
        with self.cond:
            self.calls.append(("DEL", request.invocation.container_id))


def _record(pending: Path, verb: str, cid: str, conf: dict[str, Any] | bytes, ifname: str = "eth0") -> Path:
    pending.mkdir(mode=0o700, parents=True, exist_ok=True)
    env = {"CNI_COMMAND": verb, "CNI_CONTAINERID": cid, "CNI_NETNS": "/proc/self/ns/net", "CNI_IFNAME": ifname}
    raw = conf if isinstance(conf, bytes) else json.dumps(conf).encode()
    path = pending / record_name(cid, ifname)
    path.write_bytes(encode_request(env, raw))
    return path


def test_pending_dels_replayed_before_serving_failures_kept_corrupt_moved(tmp_path):
    pending = tmp_path / "pending"
    good = _record(pending, "DEL", "rec-good", {"cniVersion": "1.1.0", "name": "blk", "type": "blocky"})
    failing = _record(pending, "DEL", "rec-bad", {"cniVersion": "1.1.0", "name": "bad", "type": "nope"})
    not_del = _record(pending, "ADD", "rec-add", {"cniVersion": "1.1.0", "name": "blk", "type": "blocky"})
    bad_id = _record(pending, "DEL", "rec/../x\n", {"cniVersion": "1.1.0", "name": "blk", "type": "blocky"})
    too_long = _record(pending, "DEL", "r" * 300, {"cniVersion": "1.1.0", "name": "blk", "type": "blocky"})
    garbage = pending / "x.eth0.json"
    garbage.write_bytes(b'{"env": {"CNI_COMMAND": "DEL"}, "config": ')
    in_progress = pending / ".y.eth0.json.123.tmp"  # a shim still writing its record
    in_progress.write_bytes(b"{")
    stale = pending / ".z.eth0.json.77.tmp"  # a shim killed while writing, long ago
    stale.write_bytes(b"{")
    os.utime(stale, (time.time() - 3600, time.time() - 3600))
    sock = str(tmp_path / "run" / "d.sock")
    cfg = DaemonConfig(socket=sock, use_api=False, regenerate_config=False, cache_dir=str(tmp_path / "cache"),
                       pending_dir=str(pending), gc_period=0.2)
    daemon = Daemon(cfg)
    plugin = SocketWatcher(sock)
    daemon.registry.register("blocky", plugin)
    daemon.start()
    try:
        assert plugin.calls == [("DEL", "rec-good")]  # the ADD record was never run
        assert plugin.socket_existed == [False]  # replayed before the socket accepted anything
        assert not good.exists()
        assert not too_long.exists()  # ADD refuses such an id: its DEL has nothing to do, and succeeds
        assert failing.exists() and in_progress.exists() and not stale.exists()
        assert sorted(p.name for p in (pending / "corrupt").iterdir()) == sorted([not_del.name, garbage.name,
                                                                                  bad_id.name])
        assert daemon.metrics.registry.get_sample_value("metacni_pending_dels") == 1
        # The failing one is retried every GC period (and kept each time).
        assert _wait(lambda: (daemon.metrics.registry.get_sample_value(
            "metacni_requests_total", {"verb": "DEL", "network": "bad", "result": "error7"}) or 0) >= 3)
        assert failing.exists()
    finally:
        daemon.stop()


def test_pending_dir_follows_the_node_cni_dir():
    assert DaemonConfig().pending_path() == Path("/var/lib/cni/metacni/pending-del")
    assert DaemonConfig(node_config={"cni_dir": "/x/cni"}).pending_path() == Path("/x/cni/pending-del")
    assert DaemonConfig(pending_dir="/p", node_config={"cni_dir": "/x"}).pending_path() == Path("/p")
    assert DaemonConfig(pending_dir="", node_config={"cni_dir": "/x"}).pending_path() == Path("/x/pending-del")


def test_del_recorded_while_the_daemon_was_down_leaves_nothing(make_node):
    """A real pod (veth, lease, caches) ADDed through the daemon; the daemon stops; the DEL is
    recorded as the shim does when no daemon listens; the next daemon carries it out before it
    serves, and nothing of the pod is left."""
    from metacni_testkit.nodes import CNI_PATH, NODE_NAME

    node = make_node(prefix="mcpend")  # a short /tmp root: the socket path is capped
    node.start_api()
    node.write_primary()
    pending = node.root / "pending"
    args = ["--kubeconfig", str(node.kubeconfig), "--node-name", NODE_NAME, "--cache-dir", str(node.cni_dir),
            "--cni-path", CNI_PATH, "--no-routes", "--gc-period", "0", "--no-regenerate-config",
            "--pending-dir", str(pending)]
    daemon = node.start_daemon(*args)
    pod = node.pod()
    env = {"CNI_COMMAND": "ADD", "CNI_CONTAINERID": pod.container_id, "CNI_NETNS": pod.path,
           "CNI_IFNAME": "eth0", "CNI_ARGS": pod.cni_args, "CNI_PATH": CNI_PATH}
    conf = json.dumps(node.meta_conf()).encode()
    added = unixhttp.cni(daemon.socket, env, conf)
    assert added.status == 200, added.body
    assert node.pod_links(pod) == {"lo", "eth0"} and node.veths() and node.all_leases()
    assert daemon.stop() == 0
    record = pending / record_name(pod.container_id, "eth0")
    pending.mkdir(mode=0o700)
    record.write_bytes(encode_request({**env, "CNI_COMMAND": "DEL"}, conf))
    node.start_daemon(*args)  # waits until it serves
    assert not record.exists()
    node.assert_clean(pod)
    assert not (pending / "corrupt").exists()


def test_readyz_runs_on_a_worker_with_its_query(tmp_path):
    """GET /readyz hands its query to the status handler, on a worker: a handler that waits
    (for background work to settle) does not hold up /healthz."""
    from metacni.daemon.httpserve import Reply
    from metacni.daemon.server import UnixServer

    seen: list[dict[str, str]] = []
    release = threading.Event()

    def status(params: dict[str, str]) -> dict[str, object]:
        seen.append(params)
        release.wait(30)
        return {"ready": True}

    server = UnixServer(tmp_path / "run" / "s.sock", lambda req, abandoned: Reply(200, b""), status)
    server.start()
    try:
        t, out = _in_thread(lambda: unixhttp.request(server.path, "GET", "/readyz?waitReaperIdle=5&x=a%20b"))
        assert _wait(lambda: bool(seen))
        assert unixhttp.request(server.path, "GET", "/healthz", timeout=5).status == 200
        release.set()
        t.join(30)
        assert out[0].status == 200 and seen == [{"waitReaperIdle": "5", "x": "a b"}]
    finally:
        release.set()
        server.stop(5)


@given(env=st.dictionaries(st.text(), st.text(), max_size=8), stdin=st.binary(max_size=4096))
def test_request_body_round_trips(env, stdin):
    assert decode_request(encode_request(env, stdin)) == CNIRequest(env, stdin)


@given(cid=st.text(max_size=300), ifname=st.text(max_size=300))
def test_record_names_are_safe_file_names(cid, ifname):
    name = record_name(cid, ifname)
    assert re.fullmatch(r"[A-Za-z0-9_.-]{1,64}\.[A-Za-z0-9_.-]{1,16}\.[0-9a-f]{32}\.json", name), name
    # Bounded whatever the runtime passes: the record and the shim's ".<name>.<pid>.tmp" stay
    # under NAME_MAX (255).
    assert len(name.encode()) <= 123 and len(f".{name}.4194304.tmp") <= 255
    if re.fullmatch(r"[A-Za-z0-9_-]{1,64}", cid) and re.fullmatch(r"[A-Za-z0-9_-]{1,16}", ifname):
        assert name.startswith(f"{cid}.{ifname}.")  # ordinary ids stay readable


# what os.environ can hold: no NUL, undecodable bytes as surrogate escapes
_env_text = st.text(alphabet=st.characters(blacklist_characters="\0", blacklist_categories=("Cs",))
                    | st.sampled_from(["\udc80", "\udcff"]), max_size=200)


@given(a=st.tuples(_env_text, _env_text), b=st.tuples(_env_text, _env_text))
def test_record_names_differ_for_different_attachments(a, b):
    """Ids that agree on their first 64 bytes (or differ only in unsafe bytes) still get their
    own record: one attachment's DEL never overwrites another's."""
    assert (record_name(*a) == record_name(*b)) == (a == b)


def test_record_names_of_ids_sharing_a_long_prefix():
    names = {record_name("c" * 200 + x, "eth0") for x in "12"} | {record_name("a/b", "e"), record_name("a_b", "e")}
    assert len(names) == 4


def test_curl_with_a_large_config_is_not_kept_waiting(served, tmp_path):
    """A client that sends ``Expect: 100-continue`` (curl does for large bodies) waits up to a
    second for the go-ahead before sending its body: the daemon gives it at once."""
    daemon, plugin = served
    plugin.release.set()
    env = {"CNI_COMMAND": "ADD", "CNI_CONTAINERID": "curl1", "CNI_NETNS": "/proc/self/ns/net", "CNI_IFNAME": "eth0"}
    conf = {"cniVersion": "1.1.0", "name": "blk", "type": "blocky", "padding": "x" * 4096}
    body = tmp_path / "body.json"
    body.write_bytes(encode_request(env, json.dumps(conf).encode()))
    out = subprocess.run(["curl", "-sS", "--max-time", "10", "--unix-socket", daemon.cfg.socket,
                          "-H", "Metacni-Protocol: 1", "-H", "Content-Type: application/json",
                          "-H", "Expect: 100-continue",
                          "--data-binary", f"@{body}", "-w", "\n%{http_code} %{time_total}", "http://metacni/cni"],
                         capture_output=True, timeout=30, text=True)
    result, _, tail = out.stdout.rpartition("\n")
    status, seconds = tail.split()
    assert status == "200" and json.loads(result)["cniVersion"] == "1.1.0", out
    assert float(seconds) < 0.9  # not curl's one-second wait for "100 Continue"
