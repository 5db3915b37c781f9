"""hostguard's snapshot and comparison, on a tree of the test's own (no root needed)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import hostguard  # noqa: E402


def test_snapshot_sees_created_removed_and_changed_entries(tmp_path: Path) -> None:
    root, absent, netns = tmp_path / "etc-cni", tmp_path / "var-lib-containers", tmp_path / "netns"
    (root / "net.d").mkdir(parents=True)
    (root / "net.d" / "10-a.conf").write_text("{}")
    (root / "net.d" / "20-b.conf").write_text("{}")
    netns.mkdir()
    (netns / "mcpod-1").touch()  # a test's own netns: not a runtime's name, not guarded
    snap = lambda: hostguard.snapshot([root, absent], netns)  # noqa: E731
    before = snap()
    assert hostguard.changes(before, snap()) == []
    assert str(absent) not in before and str(root / "net.d" / "10-a.conf") in before

    (root / "net.d" / "10-a.conf").write_text('{"x": 1}')
    os.utime(root / "net.d" / "10-a.conf", ns=(1, 1))
    (root / "net.d" / "20-b.conf").unlink()
    (absent / "cache").mkdir(parents=True)
    (netns / "cni-1234").touch()
    (netns / "mcpod-2").touch()
    assert hostguard.changes(before, snap()) == [
        f"changed {root / 'net.d'}",
        f"changed {root / 'net.d' / '10-a.conf'}",
        f"removed {root / 'net.d' / '20-b.conf'}",
        f"created {netns / 'cni-1234'}",
        f"created {absent}",
        f"created {absent / 'cache'}",
    ]


def test_guarded_paths_cover_the_runtimes_fixed_defaults() -> None:
    guarded = {str(p) for p in hostguard.GUARDED}
    assert {"/var/lib/containers", "/etc/cni", "/opt/cni", "/var/lib/cni", "/run/containers", "/etc/containers",
            "/var/lib/containerd", "/run/runc"} <= guarded
