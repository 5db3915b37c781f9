"""Bad input gets one CNI error JSON on stdout, the right code, exit status 1, and no side effects."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from metacni_testkit.netns import is_root, link_names, run, tag

METACNI = shutil.which("metacni") or "metacni"
pytestmark = pytest.mark.skipif(not is_root(), reason="compares host namespaces and links")


def host_state() -> tuple[set[str], set[str]]:
    namespaces = set(run("ip", "netns", "list").stdout.split())
    return namespaces, link_names()


@pytest.fixture
def unchanged_host(tmp_path: Path) -> Iterator[None]:
    """Fails the test if it created namespaces or links, or wrote IPAM state."""
    before = host_state()
    yield
    after = host_state()
    # Other tests run in parallel: only names that look like ours would matter, and none may appear.
    created = {n for n in (after[0] - before[0]) | (after[1] - before[1]) if n.startswith(("veth", "cni", "bad"))}
    assert created == set()
    assert not (tmp_path / "ipam").exists()
    assert not list((tmp_path / "cache").rglob("*-*")) if (tmp_path / "cache").exists() else True


def cni_call(env: dict[str, str], stdin: str) -> tuple[int, dict]:
    full = {k: v for k, v in os.environ.items() if not k.startswith("CNI_")}
    full.update(env)
    proc = subprocess.run([METACNI], input=stdin, capture_output=True, text=True, env=full, timeout=60)
    lines = [line for line in proc.stdout.splitlines() if line.strip()]
    assert len(lines) == 1, f"stdout must hold exactly one JSON document, got {proc.stdout!r}"
    return proc.returncode, json.loads(lines[0])


def host_local_conf(tmp: Path, **overrides: object) -> str:
    conf: dict[str, object] = {"cniVersion": "1.0.0", "name": "badnet", "type": "host-local",
                               "dataDir": str(tmp / "ipam"), "subnet": "10.99.0.0/24"}
    conf.update(overrides)
    return json.dumps(conf)


def env_for(**overrides: str) -> dict[str, str]:
    env = {"CNI_COMMAND": "ADD", "CNI_CONTAINERID": "abc123", "CNI_NETNS": "/run/netns/does-not-matter",
           "CNI_IFNAME": "eth0", "CNI_PATH": "/usr/lib/cni"}
    env.update(overrides)
    return {k: v for k, v in env.items() if v != "<unset>"}


@pytest.mark.parametrize(("env", "stdin_overrides", "raw_stdin", "code", "needle"), [
    pytest.param({}, {}, "{not json", 6, "decode", id="malformed-json"),
    pytest.param({"CNI_CONTAINERID": "<unset>"}, {}, None, 4, "CNI_CONTAINERID", id="missing-containerid"),
    pytest.param({"CNI_IFNAME": "<unset>", "CNI_NETNS": "<unset>"}, {}, None, 4, "CNI_NETNS,CNI_IFNAME",
                 id="missing-two-vars"),
    pytest.param({"CNI_COMMAND": "EXPLODE"}, {}, None, 4, "EXPLODE", id="unknown-verb"),
    pytest.param({}, {"cniVersion": "9.9.9"}, None, 1, "9.9.9", id="unknown-version"),
    pytest.param({}, {"name": "../etc"}, None, 7, "../etc", id="name-dotdot"),
    pytest.param({}, {"name": "a/b"}, None, 7, "a/b", id="name-slash"),
    pytest.param({"CNI_CONTAINERID": "../x"}, {}, None, 4, "../x", id="containerid-dotdot"),
    pytest.param({"CNI_CONTAINERID": "a/b"}, {}, None, 4, "a/b", id="containerid-slash"),
    pytest.param({"CNI_IFNAME": "a" * 16}, {}, None, 4, "15", id="ifname-16-bytes"),
    pytest.param({"CNI_IFNAME": "eth/0"}, {}, None, 4, "'/'", id="ifname-slash"),
    pytest.param({"CNI_ARGS": "IgnoreUnknown=1;novalue"}, {}, None, 4, "novalue", id="cni-args-pair"),
    pytest.param({}, {"type": "no-such-plugin"}, None, 7, "no-such-plugin", id="not-in-process"),
    # issue #14 item 5: decoder failures are 6, never a traceback or 999
    pytest.param({}, {}, "[" * 100000, 6, "nested deeper than 64", id="deep-nesting"),
    pytest.param({}, {}, '{"a":' * 65 + "1" + "}" * 65, 6, "nested deeper than 64", id="nesting-65"),
    pytest.param({}, {}, '{"cniVersion": "1.0.0", "name": "n", "type": "host-local", "mtu": NaN}', 6, "NaN",
                 id="nan"),
    pytest.param({}, {}, '{"cniVersion": "1.0.0", "name": "n", "type": "host-local", "mtu": 1e999}', 6,
                 "out of range", id="huge-float"),
    pytest.param({}, {}, '{"name": "n", "mtu": ' + "9" * 5000 + "}", 6, "decode", id="huge-int"),
    pytest.param({}, {}, "[1, 2]", 6, "JSON object", id="top-level-list"),
    # names end up in file names: whole-string match, NAME_MAX-safe lengths
    pytest.param({}, {"name": "n" * 97}, None, 7, "more than 96", id="name-97"),
    pytest.param({}, {"name": "bad\n"}, None, 7, "alphanumerics", id="name-newline"),
    pytest.param({}, {"name": "a\u0000b"}, None, 7, "alphanumerics", id="name-nul"),
    pytest.param({"CNI_CONTAINERID": "abc123\n"}, {}, None, 4, "abc123\\n", id="containerid-newline"),
    pytest.param({"CNI_CONTAINERID": "c" * 129}, {}, None, 4, "more than 128", id="containerid-129"),
])
def test_plugin_side_bad_input(tmp_path: Path, unchanged_host: None, env: dict, stdin_overrides: dict,
                               raw_stdin: str | None, code: int, needle: str) -> None:
    status, err = cni_call(env_for(**env), raw_stdin if raw_stdin is not None else
                           host_local_conf(tmp_path, **stdin_overrides))
    assert status == 1
    assert err["code"] == code, err
    assert needle in err["msg"] + " " + err.get("details", "")


@pytest.mark.parametrize(("env", "nothing_to_do"), [
    pytest.param({"CNI_CONTAINERID": "c" * 129}, True, id="containerid-129"),
    pytest.param({"CNI_CONTAINERID": "c" * 400, "CNI_IFNAME": "e" * 40}, True, id="both-over"),
    pytest.param({"CNI_IFNAME": "e" * 16}, True, id="ifname-16-bytes"),
    pytest.param({"CNI_CONTAINERID": "../" + "c" * 200}, False, id="containerid-dotdot"),
    pytest.param({"CNI_CONTAINERID": "c" * 200 + "\n"}, False, id="containerid-newline"),
    pytest.param({"CNI_IFNAME": "e/" * 10}, False, id="ifname-slash"),
])
def test_del_of_ids_add_refuses_only_for_length(tmp_path: Path, unchanged_host: None, env: dict,
                                                nothing_to_do: bool) -> None:
    """CNI sets no length on container ids; metacni's caps (cache file names under NAME_MAX)
    make ADD refuse longer ones with code 4 before any plugin runs. So a DEL of such ids has
    nothing to free: it succeeds without touching anything (the runtime's teardown, or a
    pending-DEL replay, does not fail forever). Ids the spec itself rules out still get code 4."""
    status, err = cni_call(env_for(**env), host_local_conf(tmp_path))
    assert (status, err["code"]) == (1, 4), err  # ADD
    full = {**{k: v for k, v in os.environ.items() if not k.startswith("CNI_")}, **env_for(CNI_COMMAND="DEL", **env)}
    proc = subprocess.run([METACNI], input=host_local_conf(tmp_path), capture_output=True, text=True, env=full,
                          timeout=60)
    if nothing_to_do:
        assert (proc.returncode, proc.stdout) == (0, ""), proc
        assert "nothing to do" in proc.stderr
    else:
        assert proc.returncode == 1 and json.loads(proc.stdout)["code"] == 4, proc


def test_undecodable_stdin_bytes(tmp_path: Path, unchanged_host: None) -> None:
    """Invalid UTF-8 and deep nesting, also for VERSION (its stdin is optional): one JSON
    document, no traceback on stderr."""
    full = {k: v for k, v in os.environ.items() if not k.startswith("CNI_")}
    for env, stdin, code in ((env_for(), b'{"name": "\xff"}', 6), (env_for(), b"[" * 100000, 6),
                             ({"CNI_COMMAND": "VERSION"}, b"[" * 100000, None)):
        proc = subprocess.run([METACNI], input=stdin, capture_output=True, env={**full, **env}, timeout=60)
        lines = proc.stdout.decode().splitlines()
        assert len(lines) == 1, proc
        assert b"Traceback" not in proc.stderr, proc.stderr
        reply = json.loads(lines[0])
        if code is None:
            assert proc.returncode == 0 and reply["cniVersion"] == "1.1.0", reply
        else:
            assert proc.returncode == 1 and reply["code"] == code, reply


def test_version_needs_no_config() -> None:
    status, reply = cni_call({"CNI_COMMAND": "VERSION"}, '{"cniVersion":"0.4.0"}')
    assert status == 0
    assert reply == {"cniVersion": "0.4.0", "supportedVersions":
                     ["0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"]}


# --------------------------------------------------------------------------- runtime side


def fake_plugin(directory: Path, name: str, script: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text("#!/bin/sh\n" + script)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def exec_list(tmp: Path, plugin_type: str, *extra: str) -> tuple[int, dict]:
    conf = tmp / "net.conflist"
    conf.write_text(json.dumps({"cniVersion": "1.0.0", "name": "badnet", "plugins": [{"type": plugin_type}]}))
    proc = subprocess.run([METACNI, "exec", "add", str(conf), "/run/netns/none", "--cni-path", str(tmp / "bin"),
                           "--cache-dir", str(tmp / "cache"), *extra], capture_output=True, text=True, timeout=60)
    lines = [line for line in proc.stdout.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stdout
    return proc.returncode, json.loads(lines[0])


def test_unknown_plugin_type(tmp_path: Path, unchanged_host: None) -> None:
    status, err = exec_list(tmp_path, "nonexistent-plugin")
    assert status == 1 and err["code"] == 7
    assert "nonexistent-plugin" in err["details"] and "badnet" in err["details"]


def test_hanging_delegate_times_out_and_is_killed(tmp_path: Path, unchanged_host: None) -> None:
    marker = tag("hang")
    fake_plugin(tmp_path / "bin", marker, "exec sleep 300\n")
    status, err = exec_list(tmp_path, marker, "--timeout", "1")
    assert status == 1 and err["code"] == 11
    assert "timed out" in err["msg"] and marker in err["msg"]
    assert subprocess.run(["pgrep", "-f", marker], capture_output=True).returncode == 1  # nothing left running


@pytest.mark.parametrize(("script", "code", "needle"), [
    ("echo 'this is not json'; exit 1\n", 0, "error parsing its diagnostic message"),
    ("echo 'this is not json'; exit 0\n", 6, "invalid result"),
    ("echo boom >&2; exit 3\n", 0, "boom"),
    ('echo \'{"code": 7, "msg": "bad key", "details": "field x"}\'; exit 1\n', 7, "bad key"),
])
def test_misbehaving_delegate(tmp_path: Path, unchanged_host: None, script: str, code: int, needle: str) -> None:
    name = tag("garbage")
    fake_plugin(tmp_path / "bin", name, script)
    status, err = exec_list(tmp_path, name)
    assert status == 1 and err["code"] == code, err
    assert needle in err["msg"] + err.get("details", "")
    assert not (tmp_path / "cache" / "results").exists() or not any((tmp_path / "cache" / "results").iterdir())


def test_fd_level_writes_cannot_corrupt_stdout(tmp_path: Path) -> None:
    """A child process inheriting fd 1 during a plugin call writes to stderr, not into the result."""
    plugin_dir = tmp_path / "pkg"
    plugin_dir.mkdir()
    (plugin_dir / "noisy_fd_plugin.py").write_text(
        "import os, subprocess\n"
        "from metacni.plugin import hookimpl\n"
        "@hookimpl\n"
        "def cni_add(request):\n"
        "    os.write(1, b'raw fd write\\n')\n"
        "    subprocess.run(['echo', 'child output'])\n"
        "    return request.result()\n")
    runner = (
        f"import sys, io; sys.path.insert(0, {str(plugin_dir)!r})\n"
        "import noisy_fd_plugin\n"
        "from metacni.engine.registry import Registry\n"
        "from metacni.engine.invoke import Invoker\n"
        "from metacni.engine.skel import run_cni\n"
        "reg = Registry(discover=False); reg.register('noisy-fd', noisy_fd_plugin)\n"
        "sys.exit(run_cni(invoker=Invoker(reg)))\n")
    env = dict(os.environ, CNI_COMMAND="ADD", CNI_CONTAINERID="c1", CNI_NETNS="/x", CNI_IFNAME="eth0")
    proc = subprocess.run([sys.executable, "-c", runner], input='{"cniVersion":"1.0.0","name":"n","type":"noisy-fd"}',
                          capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == {"cniVersion": "1.0.0", "dns": {}}
    assert "raw fd write" in proc.stderr and "child output" in proc.stderr
