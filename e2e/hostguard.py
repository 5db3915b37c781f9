"""The machine's container and CNI paths, as a snapshot to compare before and after the e2e tests.

The e2e tests run podman, buildah, runc, containerd, cnitool and mmdebstrap; each has paths it
writes by fixed default (/var/lib/containers/cache, /run/runc, /etc/cni/net.d, ...). The tests
point them at scratch (knobs, private mount namespaces: e2e/nodehost.py); this module is the
proof: :func:`snapshot` records every entry under :data:`GUARDED` (kind, mtime, size) and the
network namespaces runtimes name on their own (podman's ``netns-*``, libcni's ``cni-*``) in
/run/netns, and :func:`changes` lists what differs. Nothing in e2e/ may write those paths, so
any difference is a bug, whichever test caused it.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable, Mapping
from pathlib import Path

#: never written by a test (the guide's "machine's own ... /etc/cni, /opt/cni or container storage")
GUARDED: tuple[Path, ...] = tuple(Path(p) for p in (
    "/etc/cni", "/opt/cni", "/var/lib/cni",
    "/etc/containers", "/var/lib/containers", "/run/containers", "/run/libpod", "/run/runc", "/run/crun",
    "/var/lib/containerd", "/run/containerd", "/var/lib/buildah",
)) + (Path.home() / ".config" / "containers", Path.home() / ".local" / "share" / "containers")
NETNS_DIR = Path("/run/netns")
#: names runtimes give the netns files they create (podman: netns-<uuid>, containerd/libcni: cni-<uuid>)
RUNTIME_NETNS = ("netns-", "cni-")
#: a bound on the entries recorded under one root (the machine's container storage can be large)
LIMIT = 50_000

#: path -> (kind, mtime in ns, size); a missing root is simply absent from the map
Snapshot = dict[str, tuple[str, int, int]]


def _entry(path: str) -> tuple[str, int, int] | None:
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return None
    kind = "dir" if stat.S_ISDIR(st.st_mode) else "link" if stat.S_ISLNK(st.st_mode) else "file"
    return kind, st.st_mtime_ns, st.st_size


def snapshot(roots: Iterable[Path] = GUARDED, netns_dir: Path = NETNS_DIR) -> Snapshot:
    """Every entry under ``roots`` (not following links) and the runtime-named netns files."""
    out: Snapshot = {}
    for root in roots:
        top = _entry(str(root))
        if top is None:
            continue
        out[str(root)] = top
        for dirpath, dirnames, filenames in os.walk(root):
            for name in [*dirnames, *filenames]:
                path = os.path.join(dirpath, name)
                entry = _entry(path)
                if entry is not None:
                    out[path] = entry
                if len(out) > LIMIT:
                    raise RuntimeError(f"more than {LIMIT} entries under {root}")
    if netns_dir.is_dir():
        for ns in netns_dir.iterdir():
            if ns.name.startswith(RUNTIME_NETNS):
                out[str(ns)] = ("netns", 0, 0)
    return out


def changes(before: Mapping[str, tuple[str, int, int]], after: Mapping[str, tuple[str, int, int]]) -> list[str]:
    """``created P``, ``removed P`` and ``changed P`` lines, sorted by path; empty when equal."""
    lines = [f"created {p}" for p in after.keys() - before.keys()]
    lines += [f"removed {p}" for p in before.keys() - after.keys()]
    lines += [f"changed {p}" for p in before.keys() & after.keys() if before[p] != after[p]]
    return sorted(lines, key=lambda line: line.split(" ", 1)[1])
