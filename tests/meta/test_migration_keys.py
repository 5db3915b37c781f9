"""``metacni validate`` warns about every Multus key metacni ignores, with its JSON path (issue
#18), and docs/operations.md's "Migrating from Multus" table lists every Multus key."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from metacni.meta.multus_keys import MULTUS_KEYS, warnings

METACNI = shutil.which("metacni") or "metacni"
DOC = Path(__file__).resolve().parents[2] / "docs" / "operations.md"
IGNORED = sorted(k for k, v in MULTUS_KEYS.items() if not v.honoured)


def _validate(tmp_path: Path, conf: dict, name: str = "00-metacni.conf") -> subprocess.CompletedProcess[str]:
    path = tmp_path / name
    path.write_text(json.dumps(conf))
    return subprocess.run([METACNI, "validate", str(path), "--no-plugin-check"], capture_output=True, text=True,
                          timeout=60)


def test_every_ignored_key_is_warned_with_its_json_path(tmp_path: Path):
    conf = {"cniVersion": "1.0.0", "name": "meta", "type": "metacni", "clusterNetwork": "primary",
            **{key: "x" for key in IGNORED}, "logOptions": {"maxSize": 1, "rotate": True}}
    proc = _validate(tmp_path, conf)
    warned = [line.split(": warning: ", 1)[1] for line in proc.stdout.splitlines() if ": warning: " in line]
    assert sorted(w.split(":", 1)[0] for w in warned) == sorted([*(f"$.{k}" for k in IGNORED),
                                                                 "$.logOptions.rotate"])
    assert proc.returncode == 0 and proc.stdout.rstrip().endswith("valid")  # warnings do not fail


def test_honoured_keys_are_not_warned(tmp_path: Path):
    conf = {"cniVersion": "1.0.0", "name": "meta", "type": "metacni", "clusterNetwork": "primary",
            "logToStderr": True, "logOptions": {"maxSize": 1}, "globalNamespaces": "default",
            "defaultNetworks": [], "multusNamespace": "kube-system"}
    assert warnings(conf) == []
    proc = _validate(tmp_path, conf)
    assert "warning" not in proc.stdout and proc.returncode == 0


@pytest.mark.parametrize("conf, expected", [
    ({"type": "multus", "name": "m", "cniVersion": "0.3.1", "delegates": [{"type": "bridge"}]},
     ["$.type: 'multus' is Multus' plugin"]),
    ({"type": "multus-shim", "name": "m", "cniVersion": "0.3.1", "clusterNetwork": "/x/10.conf",
      "delegates": [{"type": "bridge"}], "daemonSocketDir": "/run/multus"},
     ["$.type: 'multus-shim'", "$.daemonSocketDir:", "$.delegates: ignored because clusterNetwork is set"]),
    ({"cniVersion": "1.0.0", "name": "l", "plugins": [{"type": "bridge", "chrootDir": "/h"},
                                                      {"type": "metacni", "chrootDir": "/h"}]},
     ["$.plugins[1].chrootDir:"]),
    ({"type": "bridge", "name": "b", "cniVersion": "1.0.0", "chrootDir": "/h"}, []),
])
def test_warnings_name_the_path(conf: dict, expected: list[str]):
    got = warnings(conf)
    assert len(got) == len(expected)
    for line, prefix in zip(got, expected, strict=True):
        assert line.startswith(prefix), (line, prefix)


def _doc_section() -> str:
    text = DOC.read_text()
    start = text.index("## Migrating from Multus")
    end = text.find("\n## ", start + 1)
    return text[start:end if end > 0 else None]


def test_the_doc_table_lists_every_multus_key_with_what_metacni_does():
    rows = {m.group(1): m.group(2) for m in re.finditer(r"^\| `([A-Za-z]+)` \| (.+) \|$", _doc_section(), re.M)}
    assert set(rows) == set(MULTUS_KEYS)
    for key, entry in MULTUS_KEYS.items():
        assert rows[key].startswith("honoured" if entry.honoured else "**ignored**"), key
