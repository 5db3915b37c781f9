"""Install the shim into the node's binDir, atomically.

The shim is the static binary built from shim/metacni-shim.c (:func:`metacni.shimbin.path`):
no interpreter, no shared library. The runtime may be executing the old shim while the
DaemonSet installs a new one; writing in place fails with "Text file busy" (Multus #1221). A
temp file in the same directory renamed over the target replaces the name while running copies
keep their old inode.
"""

from __future__ import annotations

import os
from pathlib import Path

from metacni import shimbin
from metacni.engine.cache import atomic_write


def install_shim(bin_dir: str | os.PathLike[str], name: str = "metacni", *,
                 aliases: tuple[str, ...] = ()) -> Path:
    """Copy the shim binary to ``bin_dir/name`` (0755: temp file, fsync, rename over) and, for each
    alias, a symlink to it (so a conflist whose plugin types are metacni in-process plugins, e.g.
    ``bridge``, reaches the daemon too). :class:`metacni.shimbin.ShimMissing` when it is not built."""
    target = Path(bin_dir) / name
    atomic_write(target, shimbin.path().read_bytes(), mode=0o755, dir_mode=0o755)
    for alias in aliases:
        link = Path(bin_dir) / alias
        tmp = link.with_name(f".{alias}.tmp")
        if tmp.is_symlink() or tmp.exists():
            tmp.unlink()
        tmp.symlink_to(name)
        os.replace(tmp, link)
    return target
