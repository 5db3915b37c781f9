"""``metacni demo --dynamic`` (issue #19): a running pod's annotation is edited, the daemon
attaches the second network with traffic through it, then removes it again."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from metacni_testkit.netns import is_root

pytestmark = pytest.mark.skipif(not is_root(), reason="needs root")


def test_demo_dynamic(tmp_path: Path, demo_turn):
    proc = subprocess.run([sys.executable, "-m", "metacni", "demo", "--dynamic", "--svg", str(tmp_path / "d.svg")],
                          capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    assert "gets networks='blue' while running" in out
    assert "ok   net1 appeared with 10.250.0." in out
    assert "net1 -> api-1" in out and "FAIL" not in out
    assert "ok   net1 removed" in out and "no longer answers" in out
