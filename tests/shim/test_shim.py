"""The static binDir shim (shim/metacni-shim.c): a static executable that speaks protocol v1.

Every behaviour test runs three times: against the installed static binary
(``metacni.shimbin.path()``, musl where musl-gcc is installed), a static glibc build, and a dynamic
AddressSanitizer + UBSan build of the same source. The JSON key scan,
the JSON string escaping and base64 are fuzzed with hypothesis against Python's json/base64
through a test driver that includes the shim's source. The last tests run a real daemon in a
node namespace with real veths and leases.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import re
import shutil
import socket
import stat
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from metacni import shimbin
from metacni.daemon.install import install_shim
from metacni.daemon.protocol import record_name
from metacni.engine.chain import RuntimeConf
from metacni.spec.versions import ALL_VERSIONS
from metacni_testkit.daemon import daemon_proc
from metacni_testkit.netns import link_names, netns_path
from metacni_testkit.nodes import Node, load, rt, run_in_node

SHIM_DIR = Path(__file__).resolve().parents[2] / "shim"
CONF = json.dumps({"cniVersion": "1.0.0", "name": "shimnet", "type": "bridge"}).encode()
ENV = {"CNI_COMMAND": "ADD", "CNI_CONTAINERID": "c1", "CNI_NETNS": "/run/netns/x", "CNI_IFNAME": "eth0",
       "CNI_PATH": "/opt/cni/bin"}
# ASan: any leak or UB is an error exit the assertions on the exit status see.
SAN_ENV = {"ASAN_OPTIONS": "detect_leaks=1:abort_on_error=0:exitcode=86",
           "UBSAN_OPTIONS": "halt_on_error=1:exitcode=87:print_stacktrace=1"}


# ---------------------------------------------------------------------- builds
@pytest.fixture(scope="session")
def builds(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sanitizer shim and the test drivers, built from the checked-in source."""
    if shutil.which("make") is None or shutil.which("gcc") is None:
        pytest.fail("gcc and make are required (.ci/setup installs them)")
    out = tmp_path_factory.mktemp("shim-build")
    subprocess.run(["make", "-s", "-C", str(SHIM_DIR), f"OUT={out}", f"{out}/metacni-shim-asan",
                    f"{out}/test-driver-asan", f"{out}/test-driver"], check=True, capture_output=True)
    # The glibc static build (the fallback where musl-gcc is not installed), besides the
    # installed one (musl where available).
    subprocess.run(["make", "-s", "-C", str(SHIM_DIR), f"OUT={out}/glibc", "STATIC_CC=gcc"], check=True,
                   capture_output=True)
    return out


@pytest.fixture(params=["installed", "glibc-static", "asan"])
def shim_bin(request: pytest.FixtureRequest, builds: Path) -> str:
    if request.param == "installed":
        return str(shimbin.path())
    if request.param == "glibc-static":
        return str(builds / "glibc" / "metacni-shim")
    return str(builds / "metacni-shim-asan")


def run(binary: str, env: dict[str, str], stdin: bytes = CONF,
        timeout: float = 30) -> subprocess.CompletedProcess[bytes]:
    """Exec the shim as a runtime does: only the CNI environment, the config on stdin."""
    full = {**SAN_ENV, **env} if binary.endswith("-asan") else dict(env)
    return subprocess.run([binary], input=stdin, env=full, capture_output=True, timeout=timeout, check=False)


def one_document(out: bytes) -> dict:
    """stdout holds exactly one JSON document."""
    doc = json.loads(out)
    assert isinstance(doc, dict)
    return doc


# ---------------------------------------------------------------------- a tiny daemon
@dataclass
class FakeDaemon:
    """An HTTP/1.1 server on a unix socket that records each request and sends ``answer`` raw."""

    path: str
    answer: bytes = b""
    requests: list[tuple[bytes, dict[str, str], bytes]] = field(default_factory=list)
    hold: threading.Event = field(default_factory=threading.Event)
    close_without_answer: bool = False
    sock: socket.socket | None = None

    def start(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(self.path)
        self.sock.listen(16)
        self.hold.set()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        assert self.sock is not None
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._one, args=(conn,), daemon=True).start()

    def _one(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(30)
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                data += chunk
            head, _, body = data.partition(b"\r\n\r\n")
            lines = head.split(b"\r\n")
            headers = {k.strip().lower(): v.strip() for k, _, v in (line.decode().partition(":") for line in lines[1:])}
            while len(body) < int(headers.get("content-length", "0")):
                chunk = conn.recv(65536)
                if not chunk:
                    break
                body += chunk
            self.requests.append((lines[0], headers, body))
            self.hold.wait(60)
            if not self.close_without_answer:
                with contextlib.suppress(OSError):  # the shim gave up (its timeout test)
                    conn.sendall(self.answer)

    def stop(self) -> None:
        self.hold.set()
        if self.sock is not None:
            self.sock.close()


def http(status: int, body: bytes, headers: dict[str, str] | None = None) -> bytes:
    hdrs = {"Metacni-Protocol": "1", "Content-Type": "application/json", "Content-Length": str(len(body)),
            **(headers or {})}
    head = f"HTTP/1.1 {status} X\r\n" + "".join(f"{k}: {v}\r\n" for k, v in hdrs.items() if v is not None)
    return head.encode() + b"\r\n" + body


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[FakeDaemon]:
    d = FakeDaemon(str(tmp_path / "d.sock"), http(200, b'{"cniVersion":"1.0.0","ips":[]}\n'))
    d.start()
    yield d
    d.stop()


# ---------------------------------------------------------------------- the binary itself
def test_supported_versions_equal_the_spec(builds: Path) -> None:
    source = (SHIM_DIR / "metacni-shim.c").read_text()
    listed = re.search(r"SUPPORTED_VERSIONS\[\] = \{([^}]*)\}", source)
    assert listed is not None
    assert tuple(re.findall(r'"([^"]+)"', listed.group(1))) == ALL_VERSIONS
    out = run(str(shimbin.path()), {"CNI_COMMAND": "VERSION"}, b'{"cniVersion": "0.3.1"}')
    assert out.returncode == 0, out.stderr
    assert one_document(out.stdout) == {"cniVersion": "0.3.1", "supportedVersions": list(ALL_VERSIONS)}


@pytest.mark.parametrize("which", ["installed", "glibc-static"])
def test_is_a_static_executable(builds: Path, which: str) -> None:
    binary = str(shimbin.path() if which == "installed" else builds / "glibc" / "metacni-shim")
    dynamic = subprocess.run(["readelf", "-d", binary], capture_output=True, text=True, check=True).stdout
    headers = subprocess.run(["readelf", "-l", binary], capture_output=True, text=True, check=True).stdout
    assert "NEEDED" not in dynamic
    assert "INTERP" not in headers and "interpreter" not in headers
    kind = subprocess.run(["file", "-L", binary], capture_output=True, text=True, check=True).stdout
    assert "statically linked" in kind, kind


def test_answers_code_11_in_an_empty_chroot(tmp_path: Path) -> None:
    """Nothing in the root but the binary: no /usr, no /lib, no /run/metacni, no daemon."""
    root = tmp_path / "root"
    root.mkdir()
    shutil.copy2(shimbin.path(), root / "metacni")
    assert sorted(p.name for p in root.iterdir()) == ["metacni"]
    out = subprocess.run(["unshare", "--mount", "--root", str(root), "/metacni"], input=CONF,
                         env={**ENV}, capture_output=True, timeout=30, check=False)
    assert out.returncode == 1, out.stderr
    err = one_document(out.stdout)
    assert err["code"] == 11 and err["cniVersion"] == "1.0.0"
    assert err["msg"] == "metacni daemon is not running"
    assert "/run/metacni/metacni.sock" in err["details"] and "No such file or directory" in err["details"]


def test_version_needs_no_daemon_and_no_stdin(shim_bin: str) -> None:
    out = run(shim_bin, {"CNI_COMMAND": "VERSION", "METACNI_SOCKET": "/nonexistent"}, b"")
    assert out.returncode == 0, out.stderr
    assert one_document(out.stdout) == {"cniVersion": ALL_VERSIONS[-1], "supportedVersions": list(ALL_VERSIONS)}


def test_no_cni_command_is_a_cni_error(shim_bin: str) -> None:
    out = run(shim_bin, {}, b"")
    assert out.returncode == 1
    assert one_document(out.stdout)["code"] == 4


# ---------------------------------------------------------------------- talking to a daemon
def test_forwards_env_and_exact_stdin_and_prints_the_answer_exactly(shim_bin: str, daemon: FakeDaemon) -> None:
    answer = b'{"cniVersion": "1.0.0",  "ips": [], "odd": "\\u00e9 \xc3\xa9"}\n'
    daemon.answer = http(200, answer)
    stdin = b'  {"cniVersion":"1.0.0","name":"n\xc3\xa9t","type":"bridge"}\n\n'
    env = {**ENV, "METACNI_SOCKET": daemon.path, "METACNI_X": 'q"uo\\te\n\x01\x7f', "CNI_ARGS": "A=1;B=\t2",
           "OTHER": "not sent", "PATH": "/bin"}
    out = run(shim_bin, env, stdin)
    assert out.returncode == 0, out.stderr
    assert out.stdout == answer
    [(line, headers, body)] = daemon.requests
    assert line == b"POST /cni HTTP/1.1"
    assert headers["metacni-protocol"] == "1" and headers["host"] == "metacni"
    assert headers["content-type"] == "application/json" and int(headers["content-length"]) == len(body)
    request = json.loads(body)
    assert set(request) == {"env", "config"}
    assert request["env"] == {k: v for k, v in env.items() if k.startswith(("CNI_", "METACNI_"))}
    assert base64.b64decode(request["config"], validate=True) == stdin


env_bytes = st.binary(max_size=40).map(lambda b: b.replace(b"\0", b""))


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(values=st.lists(env_bytes, min_size=1, max_size=4))
def test_any_env_value_reaches_the_daemon_unchanged(daemon: FakeDaemon, values: list[bytes]) -> None:
    """Every byte of a CNI_*/METACNI_* value except NUL (which no environment holds): control
    characters, quotes and backslashes escaped, bytes >= 0x80 as they are (the daemon decides)."""
    daemon.requests.clear()
    env = {b"CNI_COMMAND": b"ADD", b"METACNI_SOCKET": daemon.path.encode(),
           **{f"CNI_X{i}".encode(): v for i, v in enumerate(values)}}
    out = subprocess.run([str(shimbin.path())], input=CONF, env=env, capture_output=True, timeout=30, check=False)
    assert out.returncode == 0, out.stderr
    sent = json.loads(daemon.requests[0][2].decode("utf-8", "surrogateescape"))["env"]
    assert {k.encode(): v.encode("utf-8", "surrogateescape") for k, v in sent.items()} == env


@pytest.mark.parametrize("status", [400, 500, 503])
def test_an_error_status_prints_the_body_and_exits_1(shim_bin: str, daemon: FakeDaemon, status: int) -> None:
    body = b'{"code": 7, "msg": "bad", "details": "x"}\n'
    daemon.answer = http(status, body)
    out = run(shim_bin, {**ENV, "METACNI_SOCKET": daemon.path})
    assert out.returncode == 1
    assert out.stdout == body


def test_an_empty_200_prints_nothing(shim_bin: str, daemon: FakeDaemon) -> None:
    daemon.answer = http(200, b"")
    out = run(shim_bin, {**ENV, "CNI_COMMAND": "DEL", "METACNI_SOCKET": daemon.path})
    assert (out.returncode, out.stdout) == (0, b"")


def test_a_chunked_answer_and_header_case_are_understood(shim_bin: str, daemon: FakeDaemon) -> None:
    daemon.answer = (b"HTTP/1.1 200 OK\r\nmetacni-protocol:  1 \r\nTransfer-Encoding: chunked\r\n\r\n"
                     b"5\r\n{\"a\":\r\n3;ext=1\r\n 1}\r\n0\r\n\r\n")
    out = run(shim_bin, {**ENV, "METACNI_SOCKET": daemon.path})
    assert (out.returncode, out.stdout) == (0, b'{"a": 1}')


@pytest.mark.parametrize("header, named", [(None, "unknown"), ("2", "2"), ("10", "10")])
def test_an_answer_without_protocol_1_is_code_11(shim_bin: str, daemon: FakeDaemon, header: str | None,
                                                 named: str) -> None:
    daemon.answer = http(200, b'{"cniVersion":"1.0.0"}', {"Metacni-Protocol": header})  # type: ignore[dict-item]
    out = run(shim_bin, {**ENV, "METACNI_SOCKET": daemon.path})
    assert out.returncode == 1
    err = one_document(out.stdout)
    assert err["code"] == 11 and err["msg"].startswith(f"daemon speaks protocol {named}")


def test_socket_path_from_the_config(shim_bin: str, daemon: FakeDaemon) -> None:
    conf = json.dumps({"cniVersion": "1.0.0", "name": "n", "type": "bridge",
                       "nested": {"daemonSocket": "/wrong"}, "daemonSocket": daemon.path}).encode()
    out = run(shim_bin, ENV, conf)
    assert out.returncode == 0, out.stderr
    assert len(daemon.requests) == 1


def test_env_socket_wins_over_the_config(shim_bin: str, daemon: FakeDaemon) -> None:
    conf = json.dumps({"cniVersion": "1.0.0", "daemonSocket": "/nonexistent/x.sock"}).encode()
    out = run(shim_bin, {**ENV, "METACNI_SOCKET": daemon.path}, conf)
    assert out.returncode == 0, out.stderr


def test_connection_closed_without_an_answer_is_code_11_and_not_resent(shim_bin: str, daemon: FakeDaemon) -> None:
    daemon.close_without_answer = True
    out = run(shim_bin, {**ENV, "METACNI_SOCKET": daemon.path})
    assert out.returncode == 1
    err = one_document(out.stdout)
    assert err["code"] == 11 and err["msg"] == "metacni daemon went away during the call"
    assert len(daemon.requests) == 1


def test_a_del_the_daemon_dropped_unanswered_is_recorded(shim_bin: str, daemon: FakeDaemon, tmp_path: Path) -> None:
    """A daemon stopping mid-call (a rolling update) closes a DEL's connection unanswered: the DEL
    is recorded for the next daemon (replaying a DEL is harmless), not failed with code 11."""
    daemon.close_without_answer = True
    pending = tmp_path / "pending"
    out = run(shim_bin, {**ENV, "CNI_COMMAND": "DEL", "METACNI_SOCKET": daemon.path,
                         "METACNI_PENDING_DIR": str(pending)})
    assert (out.returncode, out.stdout) == (0, b""), out.stderr
    assert b"went away during the call" in out.stderr and b"DEL recorded" in out.stderr
    assert len(daemon.requests) == 1
    assert [p.name for p in pending.iterdir()] == [record_name("c1", "eth0")]


def test_a_del_answered_503_is_recorded(shim_bin: str, daemon: FakeDaemon, tmp_path: Path) -> None:
    """503: the daemon is shutting down (its queued calls) or its queue is full. A DEL is recorded
    and carried out by the next replay pass (daemon start, then every GC period)."""
    daemon.answer = http(503, b'{"code": 11, "msg": "metacni daemon unavailable: the daemon is shutting down"}\n')
    pending = tmp_path / "pending"
    out = run(shim_bin, {**ENV, "CNI_COMMAND": "DEL", "METACNI_SOCKET": daemon.path,
                         "METACNI_PENDING_DIR": str(pending)})
    assert (out.returncode, out.stdout) == (0, b""), out.stderr
    assert b"shutting down" in out.stderr
    assert [p.name for p in pending.iterdir()] == [record_name("c1", "eth0")]


def test_a_del_that_cannot_be_recorded_after_a_drop_is_code_11(shim_bin: str, daemon: FakeDaemon,
                                                                tmp_path: Path) -> None:
    daemon.close_without_answer = True
    blocker = tmp_path / "file"
    blocker.write_text("")  # the pending dir would have to be below a regular file
    out = run(shim_bin, {**ENV, "CNI_COMMAND": "DEL", "METACNI_SOCKET": daemon.path,
                         "METACNI_PENDING_DIR": str(blocker / "pending")})
    assert out.returncode == 1
    err = one_document(out.stdout)
    assert err["code"] == 11 and err["msg"] == "metacni daemon went away during the call"
    assert "could not be recorded" in err["details"]


def test_a_daemon_that_never_answers_times_out_with_code_11(shim_bin: str, daemon: FakeDaemon) -> None:
    daemon.hold.clear()
    out = run(shim_bin, {**ENV, "METACNI_SOCKET": daemon.path, "METACNI_TIMEOUT": "0.5"}, timeout=20)
    assert out.returncode == 1
    err = one_document(out.stdout)
    assert err["code"] == 11 and "did not answer in time" in err["msg"]
    assert len(daemon.requests) == 1


def test_a_config_over_1_mib_is_refused_with_code_7(shim_bin: str, daemon: FakeDaemon) -> None:
    big = b'{"cniVersion": "1.0.0", "pad": "' + b"x" * (1024 * 1024) + b'"}'
    out = run(shim_bin, {**ENV, "METACNI_SOCKET": daemon.path}, big)
    assert out.returncode == 1
    err = one_document(out.stdout)
    assert err["code"] == 7 and err["msg"] == "config too large"
    assert daemon.requests == []


# ---------------------------------------------------------------------- daemon down
@pytest.mark.parametrize("command", ["ADD", "CHECK", "STATUS", "GC"])
def test_daemon_down_is_code_11_and_records_nothing(shim_bin: str, tmp_path: Path, command: str) -> None:
    pending = tmp_path / "pending"
    out = run(shim_bin, {**ENV, "CNI_COMMAND": command, "METACNI_SOCKET": str(tmp_path / "none.sock"),
                         "METACNI_PENDING_DIR": str(pending)})
    assert out.returncode == 1
    err = one_document(out.stdout)
    assert err["code"] == 11 and err["msg"] == "metacni daemon is not running"
    assert str(tmp_path / "none.sock") in err["details"]
    assert not pending.exists()


def test_a_refusing_socket_is_code_11(shim_bin: str, tmp_path: Path) -> None:
    path = str(tmp_path / "dead.sock")
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(path)
    s.close()  # the socket file stays, nobody listens: ECONNREFUSED
    out = run(shim_bin, {**ENV, "METACNI_SOCKET": path})
    assert out.returncode == 1
    err = one_document(out.stdout)
    assert err["code"] == 11 and "Connection refused" in err["details"]


@pytest.mark.parametrize("command", ["ADD", "DEL"])
def test_a_full_backlog_is_a_connect_timeout(shim_bin: str, tmp_path: Path, command: str) -> None:
    """A daemon that does not accept (listen backlog full): after METACNI_CONNECT_TIMEOUT the
    daemon counts as down: ADD gets code 11, a DEL is recorded."""
    path = str(tmp_path / "full.sock")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(0)
    filler = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        filler.connect(path)  # the one connection a backlog of 0 holds
        pending = tmp_path / "pending"
        out = run(shim_bin, {**ENV, "CNI_COMMAND": command, "METACNI_SOCKET": path, "METACNI_CONNECT_TIMEOUT": "0.3",
                             "METACNI_PENDING_DIR": str(pending)}, timeout=20)
    finally:
        filler.close()
        server.close()
    assert b"connect timed out" in out.stderr
    if command == "ADD":
        assert out.returncode == 1 and one_document(out.stdout)["code"] == 11
        assert not pending.exists()
    else:
        assert (out.returncode, out.stdout) == (0, b"")
        assert [p.name for p in pending.iterdir()] == [record_name("c1", "eth0")]


def _del_env(tmp_path: Path, cid: str, ifname: str = "eth0") -> dict[str, str]:
    return {**ENV, "CNI_COMMAND": "DEL", "CNI_CONTAINERID": cid, "CNI_IFNAME": ifname,
            "METACNI_SOCKET": str(tmp_path / "none.sock")}


def test_del_with_the_daemon_down_is_recorded_exactly_as_it_would_be_sent(shim_bin: str, tmp_path: Path,
                                                                           daemon: FakeDaemon) -> None:
    stdin = json.dumps({"cniVersion": "1.0.0", "name": "n", "cniDir": str(tmp_path / "cni")}).encode()
    env = _del_env(tmp_path, "abc/../x\n" + "y" * 200, "eth1")
    out = run(shim_bin, env, stdin)
    assert (out.returncode, out.stdout) == (0, b""), out.stderr
    pending = tmp_path / "cni" / "pending-del"
    assert stat.S_IMODE(pending.stat().st_mode) == 0o700
    [record] = list(pending.iterdir())
    assert record.name == "abc_.._x_" + "y" * 55 + ".eth1." + hashlib.sha256(
        b"abc/../x\n" + b"y" * 200 + b"\0eth1").hexdigest()[:32] + ".json"
    assert stat.S_IMODE(record.stat().st_mode) == 0o600
    assert b"recorded" in out.stderr
    # The same call to a live daemon sends the same bytes.
    live = run(shim_bin, {**env, "METACNI_SOCKET": daemon.path}, stdin)
    assert live.returncode == 0
    sent = json.loads(daemon.requests[0][2])
    sent["env"]["METACNI_SOCKET"] = str(tmp_path / "none.sock")
    assert json.loads(record.read_bytes()) == sent


def test_pending_dir_from_the_environment_and_the_default_name(shim_bin: str, tmp_path: Path) -> None:
    pending = tmp_path / "a" / "b"
    out = run(shim_bin, {**_del_env(tmp_path, ""), "METACNI_PENDING_DIR": str(pending)})
    assert out.returncode == 0, out.stderr
    assert [p.name for p in pending.iterdir()] == [record_name("", "eth0")]


def test_del_that_cannot_be_recorded_fails_with_code_11(shim_bin: str, tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    out = run(shim_bin, {**_del_env(tmp_path, "c1"), "METACNI_PENDING_DIR": str(blocker / "pending")})
    assert out.returncode == 1
    err = one_document(out.stdout)
    assert err["code"] == 11 and "could not be recorded" in err["details"]


def test_long_ids_get_bounded_distinct_records(shim_bin: str, tmp_path: Path) -> None:
    """Runtimes pass any container id (CNI sets no length): ids far over NAME_MAX, ids that
    differ only after their first 128 bytes, and an ifname at and over the kernel's limit each
    get their own record, every name under NAME_MAX, and no DEL is lost."""
    pending = tmp_path / "pending"
    common = "c" * 300
    calls = [(common + "1", "e" * 15), (common + "2", "e" * 15), ("d" * 250, "f" * 300), ("x", "eth0")]
    for cid, ifname in calls:
        out = run(shim_bin, {**_del_env(tmp_path, cid, ifname), "CNI_NETNS": "/run/netns/" + "n" * 3000,
                             "METACNI_PENDING_DIR": str(pending)})
        assert (out.returncode, out.stdout) == (0, b""), out.stderr
    names = sorted(p.name for p in pending.iterdir())
    assert names == sorted(record_name(cid, ifname) for cid, ifname in calls)
    assert all(len(n.encode()) <= 123 for n in names)
    recorded = {(r["env"]["CNI_CONTAINERID"], r["env"]["CNI_IFNAME"]) for r in
                (json.loads(p.read_bytes()) for p in pending.iterdir())}
    assert recorded == set(calls)
    # A second DEL of the same attachment replaces its record (one per attachment).
    assert run(shim_bin, {**_del_env(tmp_path, "x", "eth0"), "METACNI_PENDING_DIR": str(pending)}).returncode == 0
    assert len(list(pending.iterdir())) == len(calls)


# ---------------------------------------------------------------------- install
def test_install_copies_the_binary_and_replaces_a_running_shim(tmp_path: Path) -> None:
    """Atomic rename: installing while the old file is being executed never hits ETXTBSY."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    old = bin_dir / "metacni"
    old.write_bytes(b"#!/bin/sh\nread line\n")
    old.chmod(0o755)
    running = subprocess.Popen([str(old)], stdin=subprocess.PIPE)
    try:
        target = install_shim(bin_dir, aliases=("bridge",))
        assert target.read_bytes() == shimbin.path().read_bytes()
        assert stat.S_IMODE(target.stat().st_mode) == 0o755
        assert (bin_dir / "bridge").resolve() == target
    finally:
        running.communicate(b"\n", timeout=10)
    assert sorted(p.name for p in bin_dir.iterdir()) == ["bridge", "metacni"]


def test_shimbin_names_what_to_do_when_the_binary_is_missing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("METACNI_SHIM_BINARY", str(tmp_path / "absent"))
    with pytest.raises(shimbin.ShimMissing, match="make -C shim"):
        shimbin.path()


# ---------------------------------------------------------------------- fuzzing the C helpers
def _driver(builds: Path, sanitized: bool) -> str:
    return str(builds / ("test-driver-asan" if sanitized else "test-driver"))


def _drive(binary: str, args: list[str], data: bytes) -> str:
    out = subprocess.run([binary, *args], input=data, capture_output=True, timeout=30, check=False,
                         env={**SAN_ENV, "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr.decode(errors="replace")
    return out.stdout.decode("utf-8", "surrogateescape")


KEYS = ["daemonSocket", "cniDir", "cniVersion"]
key_names = st.sampled_from([*KEYS, "daemonsocket", "name", "", "daemonSocket\u0000", "cni\"Dir"])
text = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=20)
scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | text | st.sampled_from(KEYS)
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                      | st.dictionaries(key_names | text, inner, max_size=4), max_leaves=12)
top_pairs = st.lists(st.tuples(key_names | text, values), max_size=6)


def _render(pairs: list[tuple[str, object]], ensure_ascii: bool, indent: int | None) -> str:
    """A JSON object with possibly duplicate keys, in json.dumps' own spelling."""
    sep = "\n" + " " * indent if indent is not None else ""
    items = [json.dumps(k, ensure_ascii=ensure_ascii) + ": " + json.dumps(v, ensure_ascii=ensure_ascii, indent=indent)
             for k, v in pairs]
    return "{" + sep + ("," + sep).join(items) + "}"


def _expected(doc: str) -> dict[str, str | None]:
    try:
        parsed = json.loads(doc)
    except ValueError:
        return dict.fromkeys(KEYS)
    if not isinstance(parsed, dict):
        return dict.fromkeys(KEYS)
    return {k: parsed[k] if isinstance(parsed.get(k), str) else None for k in KEYS}


def _scanned(driver: str, doc: bytes) -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for line in _drive(driver, ["scan", *KEYS], doc).splitlines():
        name, state, *value = line.split(" ")
        if name == "rc":
            continue
        out[name] = bytes.fromhex(value[0] if value else "").decode("utf-8", "surrogatepass") if state == "found" \
            else None
    return out


@pytest.mark.parametrize("sanitized", [False, True], ids=["plain", "asan"])
@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(pairs=top_pairs, ensure_ascii=st.booleans(), indent=st.none() | st.integers(0, 3))
def test_key_scan_agrees_with_python_json(builds: Path, sanitized: bool, pairs: list[tuple[str, object]],
                                          ensure_ascii: bool, indent: int | None) -> None:
    doc = _render(pairs, ensure_ascii, indent)
    assert _scanned(_driver(builds, sanitized), doc.encode("utf-8")) == _expected(doc)


@pytest.mark.parametrize("sanitized", [False, True], ids=["plain", "asan"])
@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(pairs=top_pairs, cut=st.integers(0, 400), junk=st.sampled_from(["", "x", ",", "}", "]", '"', "\\", "\n"]))
def test_key_scan_finds_nothing_in_a_broken_document(builds: Path, sanitized: bool,
                                                     pairs: list[tuple[str, object]], cut: int, junk: str) -> None:
    """Truncated or damaged documents: the scan agrees with json (which refuses them: nothing
    found) and never reads out of bounds (ASan)."""
    doc = _render(pairs, True, None)
    broken = doc[:cut] + junk + doc[cut + 1:] if cut < len(doc) else doc + junk
    assert _scanned(_driver(builds, sanitized), broken.encode("utf-8")) == _expected(broken)


@pytest.mark.parametrize("doc, found", [
    (b'\xef\xbb\xbf{"cniDir": "/x"}', "/x"),  # a UTF-8 BOM, like json.loads(bytes)
    (b'{"cniDir": "\\ud800"}', "\ud800"),  # a lone surrogate, as Python keeps it
    (b'{"cni\\u0044ir": "a\\/b"}', "a/b"),  # escapes in keys and values
    (b'{"cniDir": "a"} x', None),  # trailing garbage: json refuses the document
    (b"[" * 5000 + b"]" * 5000, None),  # deep nesting: no recursion, nothing found
    (b'{"a": ' + b"[" * 5000 + b"]" * 5000 + b', "cniDir": "d"}', None),  # deeper than the scan's stack
])
def test_key_scan_edge_cases(builds: Path, doc: bytes, found: str | None) -> None:
    for sanitized in (False, True):
        assert _scanned(_driver(builds, sanitized), doc)["cniDir"] == found


@pytest.mark.parametrize("sanitized", [False, True], ids=["plain", "asan"])
@settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.binary(max_size=64) | st.text(max_size=32).map(lambda s: s.encode("utf-8", "surrogatepass")))
def test_json_escaping_round_trips_any_bytes(builds: Path, sanitized: bool, data: bytes) -> None:
    """Control characters, quotes and backslashes are escaped; other bytes pass as they are, so
    valid UTF-8 decodes to the same text and invalid bytes reach the daemon unchanged."""
    literal = _drive(_driver(builds, sanitized), ["escape"], data)
    assert not any(ord(c) < 0x20 for c in literal)
    assert json.loads(literal).encode("utf-8", "surrogateescape") == data


@pytest.mark.parametrize("sanitized", [False, True], ids=["plain", "asan"])
@settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.binary(max_size=100))
def test_base64_agrees_with_python(builds: Path, sanitized: bool, data: bytes) -> None:
    assert _drive(_driver(builds, sanitized), ["base64"], data) == base64.b64encode(data).decode()



ids = st.binary(max_size=300).map(lambda b: b.replace(b"\0", b"")) | st.sampled_from(
    [b"", b"c1", b"a" * 64, b"a" * 65, b"\xff\xfe", "\u00e9t\u00e9".encode()])


@pytest.mark.parametrize("sanitized", [False, True], ids=["plain", "asan"])
@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(cid=ids, ifname=ids)
def test_record_name_agrees_with_python(builds: Path, sanitized: bool, cid: bytes, ifname: bytes) -> None:
    """The shim and the daemon (metacni.daemon.protocol.record_name) name a record alike."""
    name = _drive(_driver(builds, sanitized), ["name"], cid + b"\0" + ifname)
    assert name == record_name(cid.decode("utf-8", "surrogateescape"), ifname.decode("utf-8", "surrogateescape"))


# ---------------------------------------------------------------------- a real daemon
@pytest.fixture
def node(box) -> Iterator[Node]:
    """A node netns with the static shim installed as ``bridge`` (metacni_testkit.nodes.Node: its
    plugins' ``cniDir`` and its daemon's ``--pending-dir`` are the test's own)."""
    with tempfile.TemporaryDirectory(prefix="mcshim-") as work:
        n = Node(box=box, name=box.netns("mcshim"), root=Path(work), mode="daemon")
        try:
            yield n
        finally:
            if n.daemon is not None:
                n.daemon.kill()


def _veths(node: Node) -> list[str]:
    return [n for n in link_names(node.name) if n.startswith("veth")]


def test_add_check_del_through_the_shim_to_a_real_daemon(node: Node, box) -> None:
    node.start_daemon()
    net = load(node.conflist(subnet="10.86.0.0/24"))
    runner = node.runner()
    pod = netns_path(box.netns("mcshpod"))
    result = run_in_node(node, lambda: runner.add(net, rt("s1", pod)))
    assert result.ips[0].address.startswith("10.86.0.")
    assert "eth0" in link_names(pod.rsplit("/", 1)[1]) and len(_veths(node)) == 1
    assert len(node.leases(net.name)) == 1
    run_in_node(node, lambda: runner.check(net, rt("s1", pod)))
    assert node.daemon is not None
    served = [r.get("verb") for r in node.daemon.log_records() if r.get("network") == net.name and r.get("verb")]
    assert "ADD" in served and "CHECK" in served, node.daemon.log_text()
    run_in_node(node, lambda: runner.delete(net, rt("s1", pod)))
    assert node.leases(net.name) == []
    # The DEL answers with the veth cut off; the daemon's reaper deletes it, and a graceful stop
    # waits for the reaper.
    assert node.daemon.stop() == 0
    assert "eth0" not in link_names(pod.rsplit("/", 1)[1]) and _veths(node) == []


def test_del_while_the_daemon_is_down_is_carried_out_when_it_starts(node: Node, box) -> None:
    node.start_daemon()
    net = load(node.conflist(subnet="10.87.0.0/24"))
    runner = node.runner()
    pod = netns_path(box.netns("mcshpod"))
    run_in_node(node, lambda: runner.add(net, rt("down1", pod)))
    assert node.daemon is not None and node.daemon.stop() == 0
    # ADD with the daemon down: code 11 (the runner's clean-up DEL after it is recorded too).
    other = netns_path(box.netns("mcshpod"))
    with pytest.raises(Exception, match="not running") as err:
        run_in_node(node, lambda: runner.add(net, rt("down2", other)))
    assert getattr(err.value, "code", None) == 11
    # DEL with the daemon down: success for the runtime, recorded, nothing freed yet.
    run_in_node(node, lambda: runner.delete(net, rt("down1", pod)))
    pending = node.cni_dir / "pending-del"
    assert sorted(p.name for p in pending.iterdir()) == sorted([record_name("down1", "eth0"),
                                                                record_name("down2", "eth0")])
    assert len(node.leases(net.name)) == 1 and len(_veths(node)) == 1
    assert "eth0" in link_names(pod.rsplit("/", 1)[1])
    # The daemon replays it before it serves: once it is ready, everything is freed.
    node.start_daemon()
    assert list(pending.iterdir()) == []
    assert node.leases(net.name) == []
    assert node.daemon is not None and node.daemon.stop() == 0  # drains the reaper's deletions
    assert _veths(node) == [] and "eth0" not in link_names(pod.rsplit("/", 1)[1])


def test_dels_with_long_ids_recorded_while_down_are_all_replayed(node: Node, box) -> None:
    """A pod with the longest ids ADD takes (a 128-character container id, a 15-byte ifname)
    and a DEL with a 250-character id (over that cap: ADD refuses it, so there is nothing to
    free), both DELs arriving while the daemon is down: each gets its own bounded record, the
    next daemon replays both, the pod's veth, lease and caches are freed and no record is left
    (none retried forever, none quarantined)."""
    node.start_daemon()
    net = load(node.conflist(subnet="10.89.0.0/24"))
    runner = node.runner()
    pod = netns_path(box.netns("mcshpod"))
    cid, too_long, ifname = "0123456789abcdef" * 8, "z" * 250, "net0123456789ab"
    run_in_node(node, lambda: runner.add(net, RuntimeConf(cid, pod, ifname)))
    assert ifname in link_names(pod.rsplit("/", 1)[1]) and len(node.leases(net.name)) == 1
    assert node.daemon is not None and node.daemon.stop() == 0
    for container in (cid, too_long):
        run_in_node(node, lambda c=container: runner.delete(net, RuntimeConf(c, pod, ifname)))
    pending = node.cni_dir / "pending-del"
    assert sorted(p.name for p in pending.iterdir()) == sorted([record_name(cid, ifname),
                                                                record_name(too_long, ifname)])
    node.start_daemon()  # replays before it serves
    assert list(pending.iterdir()) == []
    assert node.leases(net.name) == []
    assert node.daemon is not None and node.daemon.stop() == 0
    assert _veths(node) == [] and ifname not in link_names(pod.rsplit("/", 1)[1])
    assert not (pending / "corrupt").exists()


def test_a_body_over_the_daemons_limit_gets_its_code_7_answer(tmp_path: Path) -> None:
    """The daemon answers 413 before reading the body; the shim, whose send then fails, still
    reads and prints that answer (not a code-11 "connection lost")."""
    conf = json.dumps({"cniVersion": "1.0.0", "name": "x", "type": "bridge", "pad": "x" * 900_000}).encode()
    with daemon_proc(tmp_path / "d", args=["--no-api", "--no-routes", "--gc-period", "0", "--no-regenerate-config",
                                           "--conf-dir", str(tmp_path / "conf"),
                                           "--cache-dir", str(tmp_path / "cache")]) as d:
        for command in ("ADD", "DEL"):
            out = run(str(shimbin.path()), {**ENV, "CNI_COMMAND": command, "METACNI_SOCKET": d.socket}, conf)
            assert out.returncode == 1
            err = one_document(out.stdout)
            assert (err["code"], err["msg"]) == (7, "config too large")
