"""The contract metacni gives plugin authors: discovery and clashes, declared versions and
capabilities enforced, and a crashing plugin turned into a CNI error that names it -- with
only the JSON on stdout, the traceback on stderr, and the chain rolled back.

Plugins reach the engine the way third-party ones do: through ``metacni.plugins`` entry
points of (fake, per-test) installed distributions, or registered directly for in-process
checks of the invoker.
"""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from metacni.cli.main import main
from metacni.engine.cache import ResultCache
from metacni.engine.chain import ChainRunner, RuntimeConf
from metacni.engine.invoke import Invoker
from metacni.engine.registry import Registry
from metacni.engine.skel import run_cni
from metacni.plugin import CNIError, Code, Invocation, PluginInfo, Request, Result, hookimpl
from metacni.spec.config import network_list_from_bytes
from metacni_testkit.netns import link_names, netns_path, tag


def fake_dist(site: Path, dist: str, entry_points: dict[str, str], modules: dict[str, str] | None = None) -> None:
    """An installed distribution as importlib.metadata sees it: a dist-info with entry points."""
    info = site / f"{dist.replace('-', '_')}-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(
        "[metacni.plugins]\n" + "".join(f"{k} = {v}\n" for k, v in entry_points.items()))
    for name, source in (modules or {}).items():
        (site / f"{name}.py").write_text(textwrap.dedent(source))


PASS_THROUGH = """
    from metacni.plugin import hookimpl

    @hookimpl
    def cni_add(request):
        return request.prev_result
"""


def env_with(site: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CNI_", "PYTEST_"))}
    env["PYTHONPATH"] = str(site)
    return env


def prev(version: str = "1.0.0") -> Result:
    return Result.model_validate({"cniVersion": version, "interfaces": [{"name": "eth0", "sandbox": "/x"}],
                                  "ips": [{"address": "10.1.0.2/24", "interface": 0}]})


def inv(command: str = "ADD") -> Invocation:
    return Invocation(command=command, container_id="c1", netns="/x", ifname="eth0")


class Spy:
    """A registered plugin that records what its hooks received."""

    def __init__(self, info: Any = None, add: Any = None) -> None:
        self._info, self._add = info, add
        self.requests: list[Request] = []

    @hookimpl
    def cni_plugin_info(self) -> Any:
        if isinstance(self._info, BaseException):
            raise self._info
        return self._info

    @hookimpl
    def cni_add(self, request: Request) -> Any:
        self.requests.append(request)
        if isinstance(self._add, BaseException):
            raise self._add
        return self._add if self._add is not None else request.prev_result


def invoker_with(**plugins: object) -> Invoker:
    registry = Registry(discover=False)
    for name, plugin in plugins.items():
        registry.register(name, plugin)
    return Invoker(registry)


def conf(plugin_type: str, version: str = "1.0.0", **extra: Any) -> dict[str, Any]:
    return {"cniVersion": version, "name": "net", "type": plugin_type, **extra}


# ---------------------------------------------------------------------- clashes
def test_clash_is_reported_at_discovery_and_refused_at_use(tmp_path, monkeypatch, caplog):
    ptype = tag("clash-")
    fake_dist(tmp_path, "clash-a", {ptype: "clash_a_mod"}, {"clash_a_mod": PASS_THROUGH})
    fake_dist(tmp_path, "clash-b", {ptype: "clash_b_mod"}, {"clash_b_mod": PASS_THROUGH})
    monkeypatch.syspath_prepend(str(tmp_path))
    with caplog.at_level(logging.ERROR, logger="metacni.engine.registry"):
        registry = Registry()
    (clash,) = [c for c in registry.clashes if ptype in c]
    assert "clash-a" in clash and "clash-b" in clash
    assert any(ptype in r.getMessage() and r.levelno == logging.ERROR for r in caplog.records)
    with pytest.raises(CNIError) as err:
        Invoker(registry).invoke(ptype, conf(ptype), inv(), prev())
    assert err.value.code == Code.INVALID_CONFIG
    assert "clash-a" in err.value.details and "clash-b" in err.value.details
    assert "bridge" in registry.types()  # the rest keeps working
    with pytest.raises(CNIError):
        registry.register(ptype, Spy())  # no silent override by a direct registration either


def test_metacni_plugins_names_the_clash_and_exits_1(tmp_path):
    ptype = tag("clash-")
    fake_dist(tmp_path, "clash-a", {ptype: "clash_a_mod"}, {"clash_a_mod": PASS_THROUGH})
    fake_dist(tmp_path, "clash-b", {ptype: "clash_b_mod"}, {"clash_b_mod": PASS_THROUGH})
    proc = subprocess.run([sys.executable, "-m", "metacni", "plugins", "--json"], env=env_with(tmp_path),
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1, proc.stderr
    listing = json.loads(proc.stdout)
    assert any(ptype in c and "clash-a" in c and "clash-b" in c for c in listing["clashes"])
    assert f"plugin type {ptype!r} is provided by more than one package" in proc.stderr


def test_a_single_third_party_plugin_is_listed_and_runs(tmp_path, monkeypatch):
    ptype = tag("solo-")
    fake_dist(tmp_path, "solo-plugin", {ptype: "solo_mod"}, {"solo_mod": PASS_THROUGH})
    monkeypatch.syspath_prepend(str(tmp_path))
    registry = Registry()
    assert ptype in registry.types() and not [c for c in registry.clashes if ptype in c]
    assert [s.distribution for s in registry.sources()[ptype]] == ["solo-plugin"]
    out = Invoker(registry).invoke(ptype, conf(ptype), inv(), prev())
    assert out is not None and out.to_wire() == prev().to_wire()


# ---------------------------------------------------------------------- declarations
def test_declared_versions_are_enforced_before_the_hook_runs():
    spy = Spy(info=PluginInfo(versions=("1.0.0", "1.1.0")))
    invoker = invoker_with(vonly=spy)
    with pytest.raises(CNIError) as err:
        invoker.invoke("vonly", conf("vonly", "0.4.0"), inv(), prev("0.4.0"))
    assert err.value.code == Code.INCOMPATIBLE_VERSION
    assert "'vonly'" in err.value.details and "0.4.0" in err.value.details
    assert spy.requests == []
    assert invoker.invoke("vonly", conf("vonly", "1.0.0"), inv(), prev()) is not None
    assert len(spy.requests) == 1


def test_only_declared_and_enabled_capabilities_reach_the_plugin(tmp_path):
    spy = Spy(info=PluginInfo(capabilities=frozenset({"portMappings"})))
    net = network_list_from_bytes(json.dumps({"cniVersion": "1.0.0", "name": "capnet", "plugins": [
        {"type": "capspy", "capabilities": {"portMappings": True, "mac": True}}]}).encode(), is_list=True)
    runner = ChainRunner(invoker_with(capspy=spy), [], ResultCache(tmp_path))
    mappings = [{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}]
    sent = {"portMappings": mappings, "mac": "02:00:00:00:00:09", "bandwidth": {"ingressRate": 1}}
    with pytest.raises(CNIError):  # no interface plugin, so no result -- we only look at the request
        runner.add(net, RuntimeConf("c1", "/x", "eth0", capability_args=sent), rollback=False)
    (request,) = spy.requests
    assert request.runtime_config.to_plain() == {"portMappings": mappings}
    # What a delegate (an IPAM) would get: the enabled ones, filtered by its own declaration.
    assert request.delegated_runtime_config == {"portMappings": mappings, "mac": "02:00:00:00:00:09"}


def test_prev_result_is_converted_to_the_config_version():
    spy = Spy()
    out = invoker_with(fam=spy).invoke("fam", conf("fam", "0.4.0"), inv(), prev("1.0.0"))
    (request,) = spy.requests
    assert request.prev_result is not None and request.prev_result.cni_version == "0.4.0"
    assert out is not None and out.to_wire()["ips"][0]["version"] == "4"


@pytest.mark.parametrize(("info", "add", "details"), [
    (RuntimeError("no info"), None, "cni_plugin_info: RuntimeError: no info"),
    ({"versions": ["1.0.0"]}, None, "cni_plugin_info returned dict, not PluginInfo"),
    (None, RuntimeError("kaboom"), "ADD on network 'net': RuntimeError: kaboom"),
    (None, KeyError("ifname"), "ADD on network 'net': KeyError: 'ifname'"),
    (None, SystemExit(3), "ADD on network 'net': SystemExit: 3"),
    (None, "a string", "str is not a Result"),
])
def test_a_broken_plugin_is_a_999_error_naming_it(caplog, info, add, details):
    invoker = invoker_with(broken=Spy(info=info, add=add))
    with caplog.at_level(logging.ERROR), pytest.raises(CNIError) as err:
        invoker.invoke("broken", conf("broken"), inv(), prev())
    assert err.value.code == Code.INTERNAL
    assert "'broken'" in err.value.msg
    assert details in err.value.details
    if isinstance(add, BaseException) or isinstance(info, BaseException):
        assert any(r.exc_info for r in caplog.records), "the traceback must go to the log"


# ---------------------------------------------------------------------- stdout, stderr, rollback
# both plugins below append what they are asked to do to the file named by config "log"
_LOG = """
    def _log(request, what):
        with open(request.config["log"], "a") as fh:
            fh.write(what + "\\n")
"""

BOOM = """
    import sys
    from metacni.plugin import hookimpl
""" + _LOG + """
    @hookimpl
    def cni_add(request):
        _log(request, "boom ADD")
        print("noise from a plugin")
        raise RuntimeError("kaboom")

    @hookimpl
    def cni_del(request):
        _log(request, "boom DEL")
"""

MARK = """
    from metacni.plugin import get_link, hookimpl, in_pod_netns, iproute, netns_exists
""" + _LOG + """
    @hookimpl
    def cni_add(request):
        _log(request, "mark ADD")
        with in_pod_netns(request) as ipr, iproute(ipr) as ip:
            ip.link("add", ifname=request.ifname, kind="veth", peer="markpeer")
        return request.result(interfaces=[{"name": request.ifname, "sandbox": request.netns}])

    @hookimpl
    def cni_del(request):
        _log(request, "mark DEL")
        if netns_exists(request.netns):
            with in_pod_netns(request) as ipr:
                if get_link(ipr, request.ifname) is not None:
                    with iproute(ipr) as ip:
                        ip.link("del", ifname=request.ifname)
"""


def test_as_cni_binary_stdout_holds_only_the_error_json(tmp_path):
    boom = tag("boom-")
    fake_dist(tmp_path, "boom-plugin", {boom: "boom_mod"}, {"boom_mod": BOOM})
    env = env_with(tmp_path) | {"CNI_COMMAND": "ADD", "CNI_CONTAINERID": "c1", "CNI_NETNS": "/x",
                                "CNI_IFNAME": "eth0", "CNI_PATH": ""}
    stdin = json.dumps(conf(boom, log=str(tmp_path / "log"), prevResult=prev().to_wire()))
    proc = subprocess.run([sys.executable, "-m", "metacni"], input=stdin, env=env, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 1
    reply = json.loads(proc.stdout)  # exactly one JSON document, nothing else
    assert proc.stdout.strip() == json.dumps(reply)
    assert reply["code"] == 999 and reply["msg"] == f"plugin {boom!r} failed"
    assert reply["cniVersion"] == "1.0.0" and "RuntimeError: kaboom" in reply["details"]
    assert "Traceback (most recent call last)" in proc.stderr and "noise from a plugin" in proc.stderr


def test_in_a_chain_the_crash_is_rolled_back_and_stdout_stays_clean(box, tmp_path):
    site = tmp_path / "site"
    boom, mark = tag("boom-"), tag("mark-")
    fake_dist(site, "boom-plugin", {boom: "boom_mod"}, {"boom_mod": BOOM})
    fake_dist(site, "mark-plugin", {mark: "mark_mod"}, {"mark_mod": MARK})
    log = tmp_path / "log"
    conflist = tmp_path / "chain.conflist"
    conflist.write_text(json.dumps({"cniVersion": "1.0.0", "name": "crashnet", "plugins": [
        {"type": mark, "log": str(log)}, {"type": boom, "log": str(log)}]}))
    node, pod = box.netns("mcapi-node"), box.netns("mcapi-pod")
    proc = subprocess.run(["ip", "netns", "exec", node, sys.executable, "-m", "metacni", "exec", "add",
                           str(conflist), netns_path(pod), "--cache-dir", str(tmp_path / "cache")],
                          env=env_with(site), capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    reply = json.loads(proc.stdout)
    assert proc.stdout.strip() == json.dumps(reply)
    assert reply["code"] == 999 and reply["msg"] == f"plugin {boom!r} failed"
    assert f"network 'crashnet', plugin {boom!r}, ADD" in reply["details"]
    assert "Traceback (most recent call last)" in proc.stderr and "RuntimeError: kaboom" in proc.stderr
    assert "noise from a plugin" in proc.stderr
    # libcni order: every plugin already run gets DEL, the failing one included, in reverse.
    assert log.read_text().split("\n")[:-1] == ["mark ADD", "boom ADD", "boom DEL", "mark DEL"]
    assert "eth0" not in link_names(pod)
    assert not list((tmp_path / "cache").rglob("*crashnet*"))


@pytest.fixture
def root_logging():
    """run_cni installs its own stderr handler on the root logger; give pytest's back after."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def test_in_process_skel_redirects_prints_to_stderr(capsys, root_logging):
    """The same guarantee without a subprocess: run_cni with a registered crashing plugin."""

    class Noisy:
        @hookimpl
        def cni_add(self, request: Request) -> Result:
            print("stray print")
            raise ValueError("bad")

    out = io.StringIO()
    env = {"CNI_COMMAND": "ADD", "CNI_CONTAINERID": "c1", "CNI_NETNS": "/x", "CNI_IFNAME": "eth0"}
    stdin = io.BytesIO(json.dumps(conf("noisy")).encode())
    status = run_cni(env, stdin, out, invoker_with(noisy=Noisy()))
    assert status == 1
    assert json.loads(out.getvalue())["msg"] == "plugin 'noisy' failed"
    err = capsys.readouterr()
    assert "stray print" in err.err and "stray print" not in err.out


def test_main_entry_lists_types(capsys):
    assert main(["plugins", "--json"]) in (0, 1)
    listed = {p["type"] for p in json.loads(capsys.readouterr().out)["plugins"]}
    assert {"bridge", "host-local", "portmap", "masq", "forward"} <= listed
