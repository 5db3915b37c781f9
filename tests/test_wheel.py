"""What ships: ``pip install .`` (a real wheel, installed on its own) has no test support in it.

The wheel is built once per session from a copy of the shipped sources (so the build never
writes into the checkout), installed with ``pip install --target`` into a temporary directory,
and imported by an isolated interpreter (``-I -S``: no site-packages, no PYTHONPATH, so the
editable install of the checkout is invisible). Importing ``metacni`` needs none of its
dependencies, so the check needs no environment of its own.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ("pyproject.toml", "setup.py", "MANIFEST.in", "README.md", "metacni", "plugins", "shim")
# The base interpreter: a venv may hold an older setuptools than the build needs.
PYTHON = getattr(sys, "_base_executable", sys.executable)

PROBE = """
import importlib.util, json, sys
sys.path.insert(0, sys.argv[1])
import metacni
print(json.dumps({name: importlib.util.find_spec(name) is not None
                  for name in ("metacni.testing", "metacni_testkit", "metacni.sim.fakeapi", "metacni.sim.traffic")}
                 | {"file": metacni.__file__}))
"""


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    src = tmp_path_factory.mktemp("src")
    for name in SHIPPED:
        path = ROOT / name
        if path.is_dir():
            shutil.copytree(path, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        else:
            shutil.copy2(path, src / name)
    out = tmp_path_factory.mktemp("dist")
    proc = subprocess.run([PYTHON, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                           "--disable-pip-version-check", "-w", str(out), str(src)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    [built] = out.glob("metacni-*.whl")
    return built


def test_wheel_holds_no_test_support(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    assert "metacni/sim/fakeapi/server.py" in names  # the demo's API server ships
    assert "metacni/_shim/metacni-shim" in names  # the static binDir shim, compiled by the build
    leaked = [n for n in names if n.startswith(("metacni/testing/", "metacni_testkit/", "tests/"))
              or "/tests/" in n or n.endswith("conftest.py")]
    assert leaked == []


def test_installed_package_has_no_metacni_testing(wheel: Path, tmp_path: Path) -> None:
    target = tmp_path / "site"
    proc = subprocess.run([PYTHON, "-m", "pip", "install", "-q", "--no-deps", "--no-index",
                           "--disable-pip-version-check", "--target", str(target), str(wheel)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    probe = subprocess.run([PYTHON, "-I", "-S", "-c", PROBE, str(target)], capture_output=True, text=True,
                           timeout=60, cwd=tmp_path)
    assert probe.returncode == 0, probe.stderr
    found = json.loads(probe.stdout)
    assert Path(found.pop("file")).is_relative_to(target)  # the wheel's metacni, not the checkout's
    assert found == {"metacni.testing": False, "metacni_testkit": False, "metacni.sim.fakeapi": True,
                     "metacni.sim.traffic": True}
    failed = subprocess.run([PYTHON, "-I", "-S", "-c", f"import sys; sys.path.insert(0, {str(target)!r}); "
                             "import metacni.testing"], capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert failed.returncode != 0 and "No module named 'metacni.testing'" in failed.stderr
