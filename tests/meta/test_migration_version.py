"""A primary older than CNI 0.4.0 (issue #18): Multus' thick generator refuses it when its own
cniVersion is 0.4.0 or later (CHECK incompatibility) unless ``forceCNIVersion`` rewrites the
primary on disk. metacni follows the primary's version by default, and refuses an explicit newer
``--cni-version`` with a message that says what to change."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from metacni.meta.install import node_config
from metacni.spec.errors import CNIError, Code

OLD = {"cniVersion": "0.3.1", "name": "flannel-ish", "plugins": [{"type": "bridge", "bridge": "cni0"}]}


def test_an_old_primary_sets_metacni_s_version_by_default(tmp_path: Path):
    (tmp_path / "10-old.conflist").write_text(json.dumps(OLD))
    assert node_config(tmp_path)["cniVersion"] == "0.3.1"


def test_an_explicit_newer_version_is_refused_saying_what_to_change(tmp_path: Path):
    (tmp_path / "10-old.conflist").write_text(json.dumps(OLD))
    with pytest.raises(CNIError) as info:
        node_config(tmp_path, cni_version="1.0.0")
    err = info.value
    assert err.code == Code.INCOMPATIBLE_VERSION
    assert "10-old.conflist" in err.details and "0.3.1" in err.details
    assert "--cni-version" in err.details and "0.4.0 or later" in err.details
