"""``metacni install`` / ``metacni uninstall`` on a scratch node layout (no root, no daemon)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from metacni import shimbin
from metacni.daemon.install import is_our_shim, remove_shim
from metacni.meta.install import remove_node_config

PRIMARY = {"cniVersion": "1.0.0", "name": "pri", "plugins": [{"type": "bridge"}]}
needs_shim = pytest.mark.skipif(not any(p.is_file() for p in shimbin.candidates()), reason="shim not built")


def metacni(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "metacni", *args], capture_output=True, text=True, timeout=60)


def layout(tmp_path: Path) -> tuple[Path, Path]:
    conf, bin_dir = tmp_path / "net.d", tmp_path / "bin"
    conf.mkdir()
    bin_dir.mkdir()
    (conf / "10-pri.conflist").write_text(json.dumps(PRIMARY))
    return conf, bin_dir


@needs_shim
def test_install_then_uninstall_leaves_the_primary(tmp_path: Path) -> None:
    conf, bin_dir = layout(tmp_path)
    (bin_dir / "bridge").write_bytes(b"\x7fELF reference plugin")
    installed = metacni("install", f"--conf-dir={conf}", f"--bin-dir={bin_dir}", f"--cni-dir={tmp_path / 'state'}")
    assert installed.returncode == 0, installed.stderr
    shim = bin_dir / "metacni"
    assert shim.read_bytes() == shimbin.path().read_bytes() and os.access(shim, os.X_OK)
    assert is_our_shim(shim)
    (bin_dir / "metacni-alias").symlink_to("metacni")
    assert json.loads((conf / "00-metacni.conf").read_text())["type"] == "metacni"
    out = metacni("uninstall", f"--conf-dir={conf}", f"--bin-dir={bin_dir}")
    assert out.returncode == 0, out.stderr
    assert sorted(p.name for p in conf.iterdir()) == ["10-pri.conflist"]
    assert sorted(p.name for p in bin_dir.iterdir()) == ["bridge"]
    again = metacni("uninstall", f"--conf-dir={conf}", f"--bin-dir={bin_dir}")
    assert again.returncode == 0 and "nothing of metacni's" in again.stderr


def test_uninstall_keeps_files_that_are_not_metacnis(tmp_path: Path) -> None:
    conf, bin_dir = layout(tmp_path)
    (conf / "00-metacni.conf").write_text(json.dumps({"cniVersion": "1.0.0", "name": "x", "type": "bridge"}))
    (bin_dir / "metacni").write_text("#!/bin/sh\necho someone else's\n")
    assert remove_node_config(conf) == [] and remove_shim(bin_dir) == []
    assert (conf / "00-metacni.conf").exists() and (bin_dir / "metacni").exists()
    (conf / "00-metacni.conf").write_text(json.dumps({"cniVersion": "1.0.0", "name": "x",
                                                      "plugins": [{"type": "metacni"}]}))
    assert remove_node_config(conf) == [conf / "00-metacni.conf"]


@needs_shim
def test_install_replaces_a_running_shim_by_rename(tmp_path: Path) -> None:
    """The installed inode changes, the old one stays intact for a process executing it."""
    conf, bin_dir = layout(tmp_path)
    args = ("install", f"--conf-dir={conf}", f"--bin-dir={bin_dir}")
    assert metacni(*args).returncode == 0
    old = (bin_dir / "metacni").stat().st_ino
    fd = os.open(bin_dir / "metacni", os.O_RDONLY)  # stands in for a runtime executing it
    try:
        assert metacni(*args).returncode == 0
        assert (bin_dir / "metacni").stat().st_ino != old
        assert os.fstat(fd).st_ino == old and os.fstat(fd).st_nlink == 0
    finally:
        os.close(fd)
    assert not [p for p in bin_dir.iterdir() if p.name != "metacni"]  # no temp file left behind


def test_install_without_a_primary_fails_cleanly(tmp_path: Path) -> None:
    out = metacni("install", f"--conf-dir={tmp_path}", f"--bin-dir={tmp_path / 'bin'}", "--no-binary")
    assert out.returncode == 1 and "no primary network" in out.stderr and "Traceback" not in out.stderr
