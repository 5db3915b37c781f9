"""Install the shim into the node's binDir, atomically.

The shim is the static binary built from shim/metacni-shim.c (:func:`metacni.shimbin.path`):
no interpreter, no shared library. The runtime may be executing the old shim while the
DaemonSet installs a new one; writing in place fails with "Text file busy" (Multus #1221). A
temp file in the same directory renamed over the target replaces the name while running copies
keep their old inode.
"""

from __future__ import annotations

import contextlib
import logging
import os
from pathlib import Path

from metacni import shimbin
from metacni.engine.cache import atomic_write

log = logging.getLogger(__name__)


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
        tmp.replace(link)
    return target


#: Bytes every metacni shim carries (the protocol header in the static shim's rodata).
#: :func:`remove_shim` removes only a file that holds it.
SHIM_MARKER = b"Metacni-Protocol"


def is_our_shim(path: str | os.PathLike[str]) -> bool:
    """True when ``path`` is a regular file (not a symlink) holding :data:`SHIM_MARKER`."""
    p = Path(path)
    if p.is_symlink() or not p.is_file():
        return False
    return SHIM_MARKER in p.read_bytes()


def remove_shim(bin_dir: str | os.PathLike[str], name: str = "metacni") -> list[Path]:
    """Remove ``bin_dir/name`` if it is the metacni shim (a console-script ``metacni`` or another
    vendor's file of that name stays) and the symlinks in ``bin_dir`` pointing at it (aliases).
    Returns what was removed. A runtime executing the shim right now keeps running it: unlink
    only drops the name."""
    removed: list[Path] = []
    target = Path(bin_dir) / name
    if not is_our_shim(target):
        if target.exists():
            log.warning("%s is not the metacni shim: left in place", target)
        return removed
    with contextlib.suppress(OSError):
        for entry in Path(bin_dir).iterdir():
            if entry.is_symlink() and os.readlink(entry) in (name, str(target)):
                entry.unlink()
                removed.append(entry)
    target.unlink()
    removed.append(target)
    return removed
