"""A tenant's foothold for the tenant-threat tests: a directory of theirs with marker binaries.

Every marker is an executable that records that it ran; a test proves metacni never ran an
executable outside CNI_PATH by finding no record, and that it wrote no file outside its own
state dirs by comparing snapshots of the tenant's directory and the node's tree.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from metacni_testkit.nodes import Node as MetaNode

#: plugin types a tenant config may name; each has a marker binary in the tenant's binDir
MARKED_TYPES = ("x", "bridge", "host-local", "portmap", "metacni", "loopback")


@dataclass
class Tenant:
    root: Path

    @property
    def bin_dir(self) -> Path:
        return self.root / "bin"

    @property
    def conf_dir(self) -> Path:
        return self.root / "net.d"

    @property
    def marker(self) -> Path:
        return self.root / "RAN"

    def ran(self) -> list[str]:
        return self.marker.read_text().split() if self.marker.exists() else []


@contextmanager
def tenant_dir() -> Iterator[Tenant]:
    with tempfile.TemporaryDirectory(prefix="mctenant-") as tmp:
        t = Tenant(Path(tmp))
        t.bin_dir.mkdir()
        t.conf_dir.mkdir()
        for name in MARKED_TYPES:
            script = t.bin_dir / name
            script.write_text(f"#!/bin/sh\necho {name} >> {t.marker}\n"
                              'echo \'{"cniVersion":"1.0.0","interfaces":[],"ips":[]}\'\n')
            script.chmod(0o755)
        # a primary of the tenant's making, for clusterNetwork/confDir pointing here
        (t.conf_dir / "00-evil.conflist").write_text(json.dumps(
            {"cniVersion": "1.0.0", "name": "evil", "plugins": [{"type": "x"}]}))
        yield t


def snapshot(*roots: Path, skip: tuple[Path, ...] = ()) -> dict[str, str]:
    """Every file and directory under ``roots`` (but ``skip``) with a digest of its content."""
    out: dict[str, str] = {}
    for root in roots:
        for dirpath, dirnames, filenames in os.walk(root):
            here = Path(dirpath)
            dirnames[:] = [d for d in dirnames if here / d not in skip]
            out[str(here)] = "dir"
            for name in filenames:
                path = here / name
                try:
                    out[str(path)] = hashlib.sha256(path.read_bytes()).hexdigest()
                except OSError as exc:
                    out[str(path)] = f"unreadable: {exc}"
    return out


def node_snapshot(node: MetaNode, tenant: Tenant) -> dict[str, str]:
    """The tenant's directory and the node's tree outside metacni's state (cniDir, lease store,
    the daemon's socket and log dir when there is a daemon)."""
    return snapshot(tenant.root, node.root, skip=(node.cni_dir, node.data_dir, node.root / "daemon"))


def nad_conf(node: MetaNode, name: str, **overrides: Any) -> dict[str, Any]:
    conf = node.bridge_conf(name, "br-t", "10.89.7.0/24")
    conf.update(overrides)
    return conf
