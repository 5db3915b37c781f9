"""What a standalone call pays for: in-tree plugin types resolve without the entry-point scan, and
the scan (with its clash report) still runs, once, whenever anything beyond them is asked for."""

from __future__ import annotations

import json
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

from metacni.engine.registry import ENTRY_POINT_GROUP, IN_TREE, Registry


def test_in_tree_table_is_what_the_distribution_declares():
    declared = {ep.name: ep.value for ep in metadata.distribution("metacni").entry_points
                if ep.group == ENTRY_POINT_GROUP}
    assert declared == IN_TREE


@pytest.fixture
def scans(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    calls: list[str] = []
    real = metadata.entry_points

    def counting(**kwargs: object) -> object:
        calls.append(str(kwargs.get("group")))
        return real(**kwargs)

    monkeypatch.setattr(metadata, "entry_points", counting)
    return calls


def test_in_tree_types_need_no_scan_and_anything_else_scans_once(scans):
    registry = Registry()
    for plugin_type in ("metacni", "bridge", "host-local", "portmap"):
        assert registry.has(plugin_type)
        assert registry.info(plugin_type).versions
    assert scans == []
    assert not registry.has("no-such-type")
    assert scans == [ENTRY_POINT_GROUP]
    assert "bridge" in registry.types() and registry.clashes == []
    assert scans == [ENTRY_POINT_GROUP]
    assert registry.sources()["bridge"][0].distribution == "metacni"


def test_listing_and_clash_report_scan(scans):
    assert "portmap" in Registry().types()
    assert Registry().clashes == []
    assert scans == [ENTRY_POINT_GROUP] * 2


def test_registry_without_discovery_never_scans(scans):
    registry = Registry(discover=False)
    assert not registry.has("bridge") and registry.types() == [] and registry.clashes == []
    assert scans == []


def test_a_package_claiming_an_in_tree_type_is_a_clash_once_scanned(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch):
    info = tmp_path / "rogue_bridge-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: rogue-bridge\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[metacni.plugins]\nbridge = rogue_bridge_mod\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    scanned = Registry()
    assert any("'bridge'" in c and "rogue-bridge" in c for c in scanned.clashes)
    with pytest.raises(Exception, match="ambiguous plugin type"):
        scanned.get("bridge")  # refused, as for any clash, once the scan ran (the daemon, `metacni plugins`)
    # A call that never scans (a standalone ADD of the in-tree chain) runs metacni's own bridge.
    assert Registry().get("bridge").__name__ == IN_TREE["bridge"]


def test_a_standalone_meta_import_skips_the_kubernetes_client():
    """The standalone entry point, the meta plugin and the in-tree registry lookup import no API client
    library (the entry-point scan is counted by the tests above)."""
    code = ("import json, sys\n"
            "from metacni.engine.skel import run_cni\n"
            "from metacni.engine.registry import Registry\n"
            "from metacni.meta import service\n"
            "r = Registry()\n"
            "assert r.has('metacni') and r.get('metacni')\n"
            "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in "
            "('kubernetes', 'urllib3', 'yaml', 'http'))))\n")
    proc = subprocess.run([sys.executable, "-S", "-c", code], capture_output=True, text=True, timeout=60,
                          env={"PYTHONPATH": ":".join(p for p in sys.path if p)})
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == []


def test_hookimpl_marks_functions_exactly_as_pluggy_does():
    """metacni.plugin.hookimpl avoids importing pluggy; pluggy must still see its own marker."""
    import pluggy

    from metacni.engine.markers import PROJECT, hookimpl

    real = pluggy.HookimplMarker(PROJECT)
    for kwargs in ({}, {"tryfirst": True}, {"trylast": True, "optionalhook": True}, {"wrapper": True},
                   {"hookwrapper": True}, {"specname": "cni_add"}):
        def ours() -> None: ...

        def theirs() -> None: ...

        (hookimpl(**kwargs) if kwargs else hookimpl)(ours)
        (real(**kwargs) if kwargs else real)(theirs)
        assert ours.metacni_impl == theirs.metacni_impl  # type: ignore[attr-defined]


STANDALONE_IMPORTS = """
import importlib.util, json, sys
# metacni_plugins is the plugins/ folder (under -S, no editable-install finder maps it)
spec = importlib.util.spec_from_file_location("metacni_plugins", PLUGINS + "/__init__.py",
                                              submodule_search_locations=[PLUGINS])
sys.modules["metacni_plugins"] = importlib.util.module_from_spec(spec)
spec.loader.exec_module(sys.modules["metacni_plugins"])
from metacni.engine.skel import run_cni
from metacni.engine.registry import Registry
from metacni.meta import service
import metacni.plugin
r = Registry()
hooks = {t: [r.info(t).versions[-1]] + [r.implements(t, h) for h in ('cni_gc', 'cni_status')]
         for t in ('metacni', 'bridge', 'host-local', 'portmap', 'masq', 'forward')}
import metacni_plugins.bridge.attach, metacni_plugins.host_local.allocator, metacni.kernel.routes
import metacni.firewall.masq, metacni.firewall.portmap, metacni.firewall.nft, metacni.meta.kubehttp
loaded = sorted(m for m in sys.modules if m.split('.')[0] in FORBIDDEN)
r.pm  # the plugin manager, made on demand, takes over the plugins already loaded
via_pm = {t: [r.info(t).versions[-1]] + [r.implements(t, h) for h in ('cni_gc', 'cni_status')] for t in hooks}
print(json.dumps({"loaded": loaded, "direct": hooks, "pm": via_pm, "pm_has": sorted(r.types())}))
"""


def test_a_standalone_call_imports_neither_pluggy_nor_dataclasses_nor_logging():
    """Import cost of a standalone ADD (-X importtime): pluggy and dataclasses each pull in
    inspect (ast, dis, tokenize), logging pulls in traceback (tokenize, textwrap); the in-tree
    plugins, the pod path's value classes and a call that logs nothing need none of them. What
    the in-tree plugins declare is the same with and without the plugin manager."""
    forbidden = ("pluggy", "dataclasses", "inspect", "logging", "shutil", "subprocess", "tempfile", "pyroute2")
    plugins = str(Path(__file__).resolve().parents[2] / "plugins")
    code = f"FORBIDDEN = {forbidden!r}\nPLUGINS = {plugins!r}\n" + STANDALONE_IMPORTS
    proc = subprocess.run([sys.executable, "-S", "-c", code], capture_output=True, text=True, timeout=60,
                          env={"PYTHONPATH": ":".join(p for p in sys.path if p)})
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["loaded"] == []
    assert out["direct"] == out["pm"]
    assert out["direct"]["bridge"] == ["1.1.0", True, True] and out["direct"]["host-local"][0] == "1.1.0"
    assert {"bridge", "metacni", "portmap"} <= set(out["pm_has"])


def test_the_invokers_exec_timeout_is_execplugins():
    """invoke.py repeats the constant so that a call exec'ing no binary does not import execplugin."""
    from metacni.engine import execplugin, invoke

    assert invoke.DEFAULT_TIMEOUT == execplugin.DEFAULT_TIMEOUT


# What a standalone pod ADD or DEL must not import: each costs milliseconds in every fresh call
# (``-X importtime``): typing ~5 ms; pathlib with urllib.parse ~5 ms; socket with selectors and
# enum ~4 ms; threading ~2 ms; the rest pull in inspect, traceback or a whole client library.
STANDALONE_FORBIDDEN = ("typing", "pathlib", "urllib", "socket", "selectors", "threading", "base64",
                        "pluggy", "dataclasses", "inspect", "logging", "shutil", "subprocess", "tempfile",
                        "pyroute2", "kubernetes", "yaml", "http", "email")
RECORD_MODULES = ("import atexit, os, sys\n"
                  "def _record():\n"
                  "    with open(os.path.join(os.environ['MODULES_OUT'], os.environ['CNI_COMMAND']), 'w') as f:\n"
                  "        f.write('\\n'.join(sorted(sys.modules)))\n"
                  "atexit.register(_record)\n")


@pytest.fixture(scope="module")
def node_python(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A python like a node's: a venv holding metacni and its in-tree plugins, and nothing else (the
    development interpreter's editable-install finders import pathlib themselves)."""
    venv = tmp_path_factory.mktemp("nodevenv")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    site_packages = next((venv / "lib").glob("python3*/site-packages"))
    root = Path(__file__).resolve().parents[2]
    (site_packages / "metacni").symlink_to(root / "metacni")
    (site_packages / "metacni_plugins").symlink_to(root / "plugins")
    return str(venv / "bin" / "python3")


def test_a_real_standalone_add_and_del_import_none_of_the_costly_modules(node, node_python, tmp_path):
    """The meta plugin's primary chain (bridge, host-local, portmap, ipMasq), the pod GET and the
    status PATCH, run by the shim in-process with the daemon down; an atexit hook (the shim runs
    them before it leaves) lists the modules the call loaded."""
    from metacni_testkit.daemon import run_shim

    hooks = tmp_path / "hooks"
    hooks.mkdir()
    (hooks / "sitecustomize.py").write_text(RECORD_MODULES)  # run by site.main(), which the shim calls
    node.api.write_kubeconfig(node.kubeconfig, as_json=True)
    pod = node.pod("web")
    env = {"CNI_CONTAINERID": pod.container_id, "CNI_NETNS": pod.path, "CNI_IFNAME": "eth0",
           "CNI_ARGS": pod.cni_args, "CNI_PATH": "/usr/lib/cni", "METACNI_SOCKET": str(tmp_path / "absent.sock"),
           "PYTHONPATH": str(hooks), "MODULES_OUT": str(tmp_path)}
    conf = json.dumps(node.meta_conf()).encode()
    for verb in ("ADD", "DEL"):
        out = run_shim({**env, "CNI_COMMAND": verb}, conf, python=node_python, flags=["-S"], netns=node.name)
        assert out.returncode == 0, (out.stdout, out.stderr)
        if verb == "ADD":
            assert json.loads(out.stdout)["ips"][0]["address"].startswith("10.88.0.")
            assert node.network_status(pod)
        loaded = (tmp_path / verb).read_text().split()
        assert {"metacni.meta.service", "metacni_plugins.bridge.plugin"} <= set(loaded)
        assert ("metacni.meta.kubehttp" in loaded) == (verb == "ADD")  # a DEL never calls the API
        assert [m for m in loaded if m.split(".")[0] in STANDALONE_FORBIDDEN] == [], verb
    node.assert_clean(pod)
