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
