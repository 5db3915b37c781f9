"""Install the shim into the node's binDir, atomically.

The runtime may be executing the old shim while the DaemonSet installs a new one; writing in
place fails with "Text file busy" (Multus #1221). A temp file in the same directory renamed
over the target replaces the name while running copies keep their old inode.
"""

from __future__ import annotations

import os
from pathlib import Path

from metacni.engine.cache import atomic_write

SHIM_SOURCE = Path(__file__).resolve().parents[1] / "shim.py"


def shim_text(interpreter: str = "/usr/bin/env python3") -> bytes:
    """The shim with its first line pointing at ``interpreter`` (e.g. ``/usr/bin/python3 -S``:
    no site-packages scan on the fast path; the standalone fallback enables site itself)."""
    lines = SHIM_SOURCE.read_bytes().split(b"\n", 1)
    return b"#!" + interpreter.encode() + b"\n" + lines[1]


def install_shim(bin_dir: str | os.PathLike[str], name: str = "metacni", *, interpreter: str = "/usr/bin/env python3",
                 aliases: tuple[str, ...] = ()) -> Path:
    """Write ``bin_dir/name`` (0755) and, for each alias, a symlink to it (so a conflist whose
    plugin types are metacni in-process plugins, e.g. ``bridge``, reaches the daemon too)."""
    target = Path(bin_dir) / name
    atomic_write(target, shim_text(interpreter), mode=0o755, dir_mode=0o755)
    for alias in aliases:
        link = Path(bin_dir) / alias
        tmp = link.with_name(f".{alias}.tmp")
        if tmp.is_symlink() or tmp.exists():
            tmp.unlink()
        tmp.symlink_to(name)
        os.replace(tmp, link)
    return target
