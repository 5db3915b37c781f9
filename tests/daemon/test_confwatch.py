"""The daemon's conf-dir watch: a change made while it regenerates the node config is not lost."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

from metacni.daemon.confwatch import ConfWatcher, default_regenerator


def _primary(conf_dir: Path, file_name: str, name: str) -> None:
    (conf_dir / file_name).write_text(json.dumps({
        "cniVersion": "1.0.0", "name": name,
        "plugins": [{"type": "bridge", "bridge": "cni0", "ipam": {"type": "host-local", "subnet": "10.81.0.0/24"}}],
    }))


def _cluster_network(conf_dir: Path) -> str:
    return str(json.loads((conf_dir / "00-metacni.conf").read_text())["clusterNetwork"])



def _net_d_with_primary(tmp_path: Path) -> tuple[Path, Callable[[], object]]:
    """A conf dir holding one primary network, and the regenerator that writes our file there."""
    conf_dir = tmp_path / "net.d"
    conf_dir.mkdir()
    _primary(conf_dir, "10-primary.conflist", "primary")
    write = default_regenerator(str(conf_dir), None)
    assert write is not None
    return conf_dir, write


def test_our_file_renamed_away_right_after_the_write_comes_back(tmp_path):
    """Another CNI (Cilium's exclusive mode, Multus #972) may rename our file between our write
    and our next look at the directory; the watch must still notice the file is gone."""
    conf_dir, write = _net_d_with_primary(tmp_path)

    def write_then_renamed_away() -> object:
        path = write()
        os.rename(conf_dir / "00-metacni.conf", conf_dir / "00-metacni.conf.cilium_bak")
        return path

    watcher = ConfWatcher(conf_dir, regenerate=write_then_renamed_away)
    last = watcher.check(None)
    assert not (conf_dir / "00-metacni.conf").exists()
    watcher.regenerate = write
    last = watcher.check(last)
    assert _cluster_network(conf_dir).endswith("10-primary.conflist")
    runs = watcher.runs
    watcher.check(last)  # our own write is not a change: no further pass
    assert watcher.runs == runs


def test_a_primary_added_during_a_pass_is_picked_up_by_the_next(tmp_path):
    conf_dir, write = _net_d_with_primary(tmp_path)

    def write_while_a_primary_appears() -> object:
        path = write()
        _primary(conf_dir, "05-other.conflist", "other")
        return path

    watcher = ConfWatcher(conf_dir, regenerate=write_while_a_primary_appears)
    last = watcher.check(None)
    assert _cluster_network(conf_dir).endswith("10-primary.conflist")
    watcher.regenerate = write
    watcher.check(last)
    assert _cluster_network(conf_dir).endswith("05-other.conflist")
