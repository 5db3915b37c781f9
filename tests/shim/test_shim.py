"""The binDir shim: stdlib only, forwards faithfully, and degrades within its budget."""

from __future__ import annotations

import json
import marshal
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from metacni import shim
from metacni.daemon.install import install_shim
from metacni.daemon.server import UnixServer
from metacni.spec.versions import ALL_VERSIONS
from metacni_testkit.daemon import SHIM, run_shim

CONF = json.dumps({"cniVersion": "1.0.0", "name": "shimnet", "type": "bridge"}).encode()
ENV = {"CNI_COMMAND": "ADD", "CNI_CONTAINERID": "c1", "CNI_NETNS": "/run/netns/x", "CNI_IFNAME": "eth0",
       "CNI_PATH": "/opt/cni/bin"}
# Interpreters on which the metacni package is NOT importable (the node's own python3).
BARE_PYTHONS = [p for p in ("/usr/bin/python3", "/root/.pyenv/versions/3.9.18/bin/python3") if os.path.exists(p)]


@pytest.fixture
def fake_daemon(tmp_path):
    """A unix server speaking the shim protocol; records requests, answers what the test sets."""
    seen: list[dict] = []
    answer = {"exit": 0, "stdout": '{"cniVersion":"1.0.0","ips":[]}\n', "stderr": "daemon says hi\n"}
    gate = threading.Event()
    gate.set()

    def handler(req: dict) -> dict:
        seen.append(req)
        gate.wait(30)
        return dict(answer)

    server = UnixServer(str(tmp_path / "run" / "d.sock"), handler)
    server.start()
    yield server, seen, answer, gate
    gate.set()
    server.stop(1)


def test_versions_match_the_engine():
    assert shim.SUPPORTED_VERSIONS == ALL_VERSIONS


@pytest.mark.parametrize("python", BARE_PYTHONS)
def test_forwards_env_and_stdin_and_prints_the_answer(fake_daemon, python):
    server, seen, answer, _ = fake_daemon
    raw = CONF[:-1] + b', "blob": "caf\xc3\xa9"}'
    out = run_shim({**ENV, "METACNI_SOCKET": server.path, "OTHER": "x"}, raw, python=python, flags=["-I", "-S"])
    assert out.returncode == 0, out.stderr
    assert out.stdout == answer["stdout"].encode()
    assert b"daemon says hi" in out.stderr
    assert len(seen) == 1
    req = seen[0]
    assert isinstance(req["stdin"], bytes)
    assert req["op"] == "cni" and req["env"]["CNI_CONTAINERID"] == "c1" and req["env"]["OTHER"] == "x"
    assert req["stdin"] == raw


def test_error_exit_status_is_passed_through(fake_daemon):
    server, _, answer, _ = fake_daemon
    answer.update(exit=1, stdout='{"code":7,"msg":"bad"}\n', stderr="")
    out = run_shim({**ENV, "METACNI_SOCKET": server.path}, CONF, python=BARE_PYTHONS[0], flags=["-I"])
    assert out.returncode == 1
    assert json.loads(out.stdout) == {"code": 7, "msg": "bad"}


def test_socket_path_from_the_config(fake_daemon):
    server, seen, _, _ = fake_daemon
    conf = json.dumps({"cniVersion": "1.0.0", "name": "n", "type": "bridge", "daemonSocket": server.path}).encode()
    out = run_shim(ENV, conf, python=BARE_PYTHONS[0], flags=["-I"])
    assert out.returncode == 0, out.stderr
    assert len(seen) == 1


def test_imports_only_the_standard_library(fake_daemon):
    """Run the forwarding path under -X importtime and check every module it imported: all from
    the standard library, and not even json/socket/re (the fast path needs built-ins only)."""
    server, _, _, _ = fake_daemon
    out = run_shim({**ENV, "METACNI_SOCKET": server.path}, CONF, flags=["-I", "-S", "-X", "importtime"])
    assert out.returncode == 0, out.stderr
    modules = {line.split("|")[-1].strip().split(".")[0] for line in out.stderr.decode().splitlines()
               if line.startswith("import time:") and "imported package" not in line}
    modules.discard("")
    assert modules, "importtime produced no output"
    assert modules <= set(sys.stdlib_module_names), modules - set(sys.stdlib_module_names)
    assert "metacni" not in modules
    assert not modules & {"json", "socket", "re", "struct", "selectors", "enum"}, modules


@pytest.mark.parametrize("python", BARE_PYTHONS)
@pytest.mark.parametrize("command", ["ADD", "CHECK", "STATUS", "GC"])
def test_daemon_down_and_no_package_is_code_11(tmp_path, python, command):
    env = {**ENV, "CNI_COMMAND": command, "METACNI_SOCKET": str(tmp_path / "absent.sock")}
    # A deadline, not a benchmark: the issue promises an answer within 2 seconds.
    out = run_shim(env, CONF, python=python, flags=["-I"], timeout=2.0)
    assert out.returncode == 1
    reply = json.loads(out.stdout)
    assert reply["code"] == 11 and reply["cniVersion"] == "1.0.0"
    assert "daemon is down" in reply["msg"]
    assert out.stdout.count(b"\n") == 1


def test_daemon_refusing_connections_is_code_11(tmp_path):
    import socket

    path = str(tmp_path / "stale.sock")
    s = socket.socket(socket.AF_UNIX)
    s.bind(path)  # bound, never listening: ECONNREFUSED, like a socket left by a dead daemon
    try:
        out = run_shim({**ENV, "METACNI_SOCKET": path}, CONF, python=BARE_PYTHONS[0], flags=["-I"], timeout=2.0)
    finally:
        s.close()
    assert json.loads(out.stdout)["code"] == 11


def test_del_with_daemon_down_and_no_package_does_not_block_teardown(tmp_path):
    env = {**ENV, "CNI_COMMAND": "DEL", "METACNI_SOCKET": str(tmp_path / "absent.sock")}
    out = run_shim(env, CONF, python=BARE_PYTHONS[0], flags=["-I"], timeout=2.0)
    assert out.returncode == 0
    assert out.stdout == b""
    assert b"GC will reclaim" in out.stderr


@pytest.mark.parametrize("python", BARE_PYTHONS)
def test_daemon_that_never_answers_times_out_with_code_11(fake_daemon, python):
    server, seen, _, gate = fake_daemon
    gate.clear()
    env = {**ENV, "METACNI_SOCKET": server.path, "METACNI_TIMEOUT": "0.5"}
    out = run_shim(env, CONF, python=python, flags=["-I"], timeout=10)
    gate.set()
    reply = json.loads(out.stdout)
    assert out.returncode == 1 and reply["code"] == 11 and "did not answer" in reply["msg"]


def test_version_needs_no_daemon(tmp_path):
    env = {"CNI_COMMAND": "VERSION", "METACNI_SOCKET": str(tmp_path / "absent.sock")}
    out = run_shim(env, b'{"cniVersion":"0.4.0"}', python=BARE_PYTHONS[0], flags=["-I"])
    assert out.returncode == 0
    assert json.loads(out.stdout) == {"cniVersion": "0.4.0", "supportedVersions": list(ALL_VERSIONS)}


def test_standalone_fallback_runs_in_process_when_the_package_is_present(tmp_path):
    """Daemon down, metacni importable: the call completes in the shim's own process."""
    env = {**ENV, "CNI_COMMAND": "GC", "METACNI_SOCKET": str(tmp_path / "absent.sock")}
    conf = json.dumps({"cniVersion": "1.1.0", "name": "n", "type": "no-such-plugin"}).encode()
    out = run_shim(env, conf, flags=["-S"])  # -S: the shim enables site itself for the fallback
    reply = json.loads(out.stdout)
    # The in-process dispatcher answered (the daemon-down message would be code 11).
    assert reply["code"] == 7 and "no-such-plugin" in reply["details"], reply


def test_nothing_beside_the_shim_shadows_a_module(tmp_path):
    """binDir holds other plugins; a ``json.py`` or ``ipaddress.py`` there is never imported."""
    bin_dir = tmp_path / "bin"
    target = install_shim(bin_dir, interpreter=f"{sys.executable} -S")
    for name in ("json", "ipaddress", "site"):
        (bin_dir / f"{name}.py").write_text("raise SystemExit('shadowed: imported from binDir')\n")
    env = {"PATH": "/usr/bin:/bin", **ENV, "CNI_COMMAND": "GC", "METACNI_SOCKET": str(tmp_path / "absent.sock")}
    conf = json.dumps({"cniVersion": "1.1.0", "name": "n", "type": "no-such-plugin"}).encode()
    out = subprocess.run([str(target)], input=conf, env=env, capture_output=True, timeout=60, check=False)
    assert b"shadowed" not in out.stderr + out.stdout
    assert json.loads(out.stdout)["code"] == 7, out.stderr  # the standalone call ran


def test_standalone_exit_still_joins_threads_and_runs_atexit_hooks(tmp_path):
    """The shim leaves by ``_exit`` (no module teardown) even after an in-process call, but keeps
    the parts of finalisation with effects: non-daemon threads finish, atexit hooks run."""
    hooks = tmp_path / "hooks"
    hooks.mkdir()
    (hooks / "sitecustomize.py").write_text(
        "import atexit, pathlib, threading\n"
        f"out = pathlib.Path({str(tmp_path)!r})\n"
        "def after_main():\n"
        "    threading.main_thread().join()\n"
        "    (out / 'thread').write_text('joined')\n"
        "threading.Thread(target=after_main).start()\n"
        "atexit.register(lambda: (out / 'atexit').write_text('ran'))\n")
    env = {**ENV, "CNI_COMMAND": "GC", "METACNI_SOCKET": str(tmp_path / "absent.sock"), "PYTHONPATH": str(hooks)}
    conf = json.dumps({"cniVersion": "1.1.0", "name": "n", "type": "no-such-plugin"}).encode()
    out = run_shim(env, conf, flags=["-S"], timeout=30)  # site.main() runs sitecustomize
    assert json.loads(out.stdout)["code"] == 7, out.stderr
    assert (tmp_path / "thread").read_text() == "joined"
    assert (tmp_path / "atexit").read_text() == "ran"


@pytest.mark.parametrize("python", BARE_PYTHONS)
def test_installed_shim_runs_with_its_shebang(tmp_path, fake_daemon, python):
    server, seen, _, _ = fake_daemon
    target = install_shim(tmp_path / "bin", interpreter=f"{python} -S", aliases=("bridge",))
    assert os.stat(target).st_mode & 0o777 == 0o755
    assert (tmp_path / "bin" / "bridge").resolve() == target
    env = {"PATH": "/usr/bin:/bin", **ENV, "METACNI_SOCKET": server.path}
    out = subprocess.run([str(tmp_path / "bin" / "bridge")], input=CONF, env=env, capture_output=True,
                         timeout=30, check=False)
    assert out.returncode == 0, out.stderr
    assert len(seen) == 1


def test_install_replaces_a_running_shim(tmp_path):
    """Atomic rename: installing while the old file is being executed never hits ETXTBSY."""
    bin_dir = tmp_path / "bin"
    install_shim(bin_dir, interpreter="/bin/sh")
    old = (bin_dir / "metacni")
    old.write_bytes(b"#!/bin/sh\nread line\n")
    old.chmod(0o755)
    running = subprocess.Popen([str(old)], stdin=subprocess.PIPE)
    try:
        install_shim(bin_dir, interpreter=sys.executable)
        assert (bin_dir / "metacni").read_bytes().startswith(f"#!{sys.executable}\n".encode())
    finally:
        running.communicate(b"\n", timeout=10)


def test_shim_source_is_valid_python_39():
    py39 = "/root/.pyenv/versions/3.9.18/bin/python3"
    if not os.path.exists(py39):
        pytest.skip("no python3.9 here")
    subprocess.run([py39, "-I", "-c", f"import ast,sys; compile(open({SHIM!r}).read(), 'shim', 'exec')"],
                   check=True, timeout=30)


def test_shim_file_needs_nothing_but_itself(tmp_path):
    """A single file: a copy outside the package still works (no relative imports)."""
    copy = tmp_path / "metacni-shim"
    shutil.copy(SHIM, copy)
    env = {"PATH": "/usr/bin:/bin", **ENV, "CNI_COMMAND": "VERSION"}
    out = subprocess.run([BARE_PYTHONS[0], "-I", str(copy)], input=b"", env=env, capture_output=True,
                         timeout=30, check=False)
    assert out.returncode == 0 and json.loads(out.stdout)["supportedVersions"] == list(ALL_VERSIONS)
    assert Path(SHIM).read_text().startswith("#!/usr/bin/env python3\n")


def test_daemon_dying_mid_call_is_code_11_and_never_rerun_in_process(tmp_path):
    """Even with the package importable, a call the daemon may have half done is not re-run."""
    import socket

    path = str(tmp_path / "dying.sock")
    srv = socket.socket(socket.AF_UNIX)
    srv.bind(path)
    srv.listen(1)

    def accept_and_hang_up() -> None:
        conn, _ = srv.accept()
        conn.recv(4)
        conn.close()

    t = threading.Thread(target=accept_and_hang_up, daemon=True)
    t.start()
    try:
        out = run_shim({**ENV, "METACNI_SOCKET": path}, CONF, flags=["-S"], timeout=30)
    finally:
        t.join(10)
        srv.close()
    reply = json.loads(out.stdout)
    assert out.returncode == 1 and reply["code"] == 11 and "went away" in reply["msg"], reply


def _run_installed(target: Path, env: dict) -> subprocess.CompletedProcess[bytes]:
    full = {"PATH": "/usr/bin:/bin", "CNI_COMMAND": "VERSION", **env}
    return subprocess.run([str(target)], input=b"", env=full, capture_output=True, timeout=30, check=False)


@pytest.mark.parametrize("python", BARE_PYTHONS)
def test_installed_shim_runs_from_its_code_cache(tmp_path, python):
    """Python compiles a script on every run; the installed shim compiles its code once per
    interpreter, caches it, and runs the cached code afterwards."""
    target = install_shim(tmp_path / "bin", interpreter=f"{python} -S")
    cache = tmp_path / "shim-cache"
    env = {"METACNI_SHIM_CACHE": str(cache)}
    first = _run_installed(target, env)
    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout)["supportedVersions"] == list(ALL_VERSIONS)
    (entry,) = cache.iterdir()
    assert cache.stat().st_mode & 0o777 == 0o700 and entry.stat().st_mode & 0o777 == 0o600
    # the cached code is what runs: replace it with code of our own (marshalled by that interpreter)
    entry.write_bytes(subprocess.run(
        [python, "-c", "import marshal, sys; sys.stdout.buffer.write(marshal.dumps(compile("
                       "\"import sys; sys.stdout.write('from the cache')\", 't', 'exec')))"],
        capture_output=True, check=True, timeout=30).stdout)
    assert _run_installed(target, env).stdout == b"from the cache"
    # a damaged entry is compiled again and replaced
    entry.write_bytes(b"\x00garbage")
    again = _run_installed(target, env)
    assert again.returncode == 0 and json.loads(again.stdout)["cniVersion"] == "1.1.0", again.stderr
    assert b"metacni/shim.py (in " in entry.read_bytes()


def test_installed_shim_ignores_a_cache_others_can_write(tmp_path):
    target = install_shim(tmp_path / "bin", interpreter="/usr/bin/python3 -S")
    cache = tmp_path / "shared"
    cache.mkdir(mode=0o777)
    cache.chmod(0o777)
    env = {"METACNI_SHIM_CACHE": str(cache)}
    assert _run_installed(target, env).returncode == 0
    (entry,) = cache.iterdir()
    entry.write_bytes(marshal.dumps(compile("import sys; sys.stdout.write('planted')", "t", "exec")))
    out = _run_installed(target, env)
    assert out.returncode == 0 and b"planted" not in out.stdout and b"supportedVersions" in out.stdout


def test_installed_shim_caches_beside_itself_and_install_drops_stale_code(tmp_path, fake_daemon):
    server, seen, _, _ = fake_daemon
    bin_dir = tmp_path / "bin"
    target = install_shim(bin_dir, interpreter="/usr/bin/python3 -S", aliases=("bridge",))
    assert _run_installed(target, {"METACNI_SHIM_CACHE": ""}).returncode == 0
    assert not (bin_dir / ".metacni-shim").exists()  # turned off
    out = subprocess.run([str(bin_dir / "bridge")], input=CONF,
                         env={"PATH": "/usr/bin:/bin", **ENV, "METACNI_SOCKET": server.path},
                         capture_output=True, timeout=30, check=False)
    assert out.returncode == 0 and len(seen) == 1, out.stderr
    (entry,) = (bin_dir / ".metacni-shim").iterdir()
    assert entry.name.startswith("shim-") and entry.name.endswith(sys.implementation.cache_tag)
    stale = bin_dir / ".metacni-shim" / "shim-0123456789abcdef.cpython-311"
    stale.write_bytes(b"old version")
    install_shim(bin_dir, interpreter="/usr/bin/python3 -S")  # an upgrade keeps only this version's code
    assert [p.name for p in (bin_dir / ".metacni-shim").iterdir()] == [entry.name]
