"""``metacni plugin new``: the skeleton installs into a fresh virtualenv and its own test passes.

The venv sees metacni through ``--system-site-packages`` (no reinstall of the heavy
dependencies) and uses the system pip (``--without-pip`` saves the ensurepip step); the
package lands in the venv only, so the shared environment never lists the new type.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from metacni.cli.main import main
from metacni.engine.registry import Registry
from metacni_testkit.netns import tag


def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items()
            if not k.startswith(("PYTEST_", "CNI_", "PYTHONPATH", "VIRTUAL_ENV"))}


def sh(*argv: str | Path, cwd: Path | None = None, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([str(a) for a in argv], cwd=cwd, env=clean_env(), capture_output=True, text=True,
                          timeout=timeout)
    assert proc.returncode == 0, f"{argv} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc


def _use_metacni_under_test(venv: Path) -> None:
    """The system site-packages may hold another checkout's metacni: put the one under test first."""
    import metacni

    site = venv / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages"
    (site / "_metacni_under_test.pth").write_text(f"{Path(metacni.__file__).resolve().parents[1]}\n")


def test_new_plugin_installs_lists_and_passes_its_test(tmp_path):
    name = tag("scaf-", 6)
    assert main(["plugin", "new", name, "--dir", str(tmp_path)]) == 0
    pkg = tmp_path / f"metacni-{name}"
    assert (pkg / "tests" / "test_plugin.py").is_file()

    venv = tmp_path / "venv"
    sh(sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", venv)
    py = venv / "bin" / "python"
    _use_metacni_under_test(venv)
    sh(py, "-m", "pip", "install", "-q", "--no-deps", "-e", pkg)

    listed = sh(py, "-m", "metacni", "plugins").stdout
    assert any(line.split()[:2] == [name, f"metacni-{name}"] for line in listed.splitlines()), listed
    run = sh(py, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:xdist", cwd=pkg)
    assert "5 passed" in run.stdout, run.stdout
    assert name not in Registry().types()  # installed in the venv only


@pytest.mark.parametrize(("name", "status", "message"), [
    ("bridge", 2, "already installed"),
    ("Bad_Name", 2, "lower-case letters"),
    ("9lives", 2, "lower-case letters"),
    ("a--b", 2, "lower-case letters"),
])
def test_refuses_bad_or_taken_names(tmp_path, capsys, name, status, message):
    assert main(["plugin", "new", name, "--dir", str(tmp_path)]) == status
    assert message in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


def test_never_overwrites(tmp_path, capsys):
    (tmp_path / "metacni-mine").mkdir()
    (tmp_path / "metacni-mine" / "pyproject.toml").write_text("keep")
    assert main(["plugin", "new", "mine", "--dir", str(tmp_path)]) == 1
    assert "already exists" in capsys.readouterr().err
    assert (tmp_path / "metacni-mine" / "pyproject.toml").read_text() == "keep"


def test_warns_when_shadowing_a_cni_binary(tmp_path, capsys, monkeypatch):
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "shadowed").write_text("")
    monkeypatch.setenv("CNI_PATH", str(bindir))
    assert main(["plugin", "new", "shadowed", "--dir", str(tmp_path)]) == 0
    assert "will shadow that binary" in capsys.readouterr().err
