"""The command line: validate, plugins, version; startup stays cheap on the CNI path."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

METACNI = shutil.which("metacni") or "metacni"


def cli(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([METACNI, *argv], capture_output=True, text=True, timeout=60)


def test_validate_names_the_json_path_of_a_wrong_type(tmp_path: Path) -> None:
    path = tmp_path / "bad.conflist"
    path.write_text(json.dumps({"cniVersion": "1.0.0", "name": "n",
                                "plugins": [{"type": "bridge"}, {"type": "portmap", "mtu": "1500"}]}))
    proc = cli("validate", str(path), "--no-plugin-check")
    assert proc.returncode == 1
    assert "$.plugins[1].mtu" in proc.stdout and "integer" in proc.stdout


def test_validate_reports_unknown_plugin_type(tmp_path: Path) -> None:
    path = tmp_path / "x.conflist"
    path.write_text(json.dumps({"cniVersion": "1.0.0", "name": "n", "plugins": [{"type": "nope-plugin"}]}))
    proc = cli("validate", str(path), "--cni-path", str(tmp_path))
    assert proc.returncode == 1 and "$.plugins[0].type" in proc.stdout and "nope-plugin" in proc.stdout


def test_validate_accepts_a_good_file(tmp_path: Path) -> None:
    path = tmp_path / "ok.conflist"
    path.write_text(json.dumps({"cniVersion": "1.0.0", "name": "n", "plugins": [
        {"type": "bridge", "ipam": {"type": "host-local", "subnet": "10.1.0.0/24"}}]}))
    proc = cli("validate", str(path), "--cni-path", "/usr/lib/cni")
    assert proc.returncode == 0, proc.stdout
    assert "valid" in proc.stdout


def test_validate_invalid_json(tmp_path: Path) -> None:
    path = tmp_path / "broken.conf"
    path.write_text("{")
    proc = cli("validate", str(path))
    assert proc.returncode == 1 and "$: not valid JSON" in proc.stdout


def test_plugins_lists_in_tree_plugins_with_versions() -> None:
    proc = cli("plugins", "--json")
    data = json.loads(proc.stdout)
    types = {row["type"]: row for row in data["plugins"]}
    assert {"bridge", "host-local", "portmap", "masq", "forward"} <= set(types)
    assert types["portmap"]["capabilities"] == ["portMappings"]
    assert "1.1.0" in types["bridge"]["versions"]


def test_version() -> None:
    proc = cli("version")
    assert proc.returncode == 0 and "1.1.0" in proc.stdout


def test_cni_path_does_not_import_heavy_modules() -> None:
    """A VERSION call must not pay for kubernetes, pyroute2, iptc or the CLI framework."""
    code = ("import os, sys, io; os.environ['CNI_COMMAND']='VERSION';"
            "from metacni.engine.skel import run_cni; run_cni(stdin=io.BytesIO(b'{}'), stdout=io.StringIO());"
            "heavy=[m for m in ('kubernetes','pyroute2','iptc','argparse','metacni.cli.main') if m in sys.modules];"
            "print(','.join(heavy))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == ""
