"""sysctl reads and writes in the calling thread's network namespace.

The kernel resolves /proc/sys/net/* against the *opening task's* netns, and a Python thread
is a task, so after :func:`metacni.kernel.netns.enter` these touch the entered namespace
only. Paths are given as parts, because interface names may contain dots (``cni0.100``).
"""

from __future__ import annotations

import os

ROOT = "/proc/sys"


def path(*parts: str) -> str:
    for part in parts:
        if not part or "/" in part or part in (".", ".."):
            raise ValueError(f"invalid sysctl path component {part!r}")
    return os.path.join(ROOT, *parts)


def read(*parts: str) -> str:
    with open(path(*parts)) as fh:
        return fh.read().strip()


def write(value: str | int, *parts: str) -> None:
    with open(path(*parts), "w") as fh:
        fh.write(str(value))


def ensure(value: str | int, *parts: str) -> bool:
    """Write ``value`` unless already set (a read is cheaper than a write); True if written."""
    if read(*parts) == str(value):
        return False
    write(value, *parts)
    return True


def exists(*parts: str) -> bool:
    return os.path.exists(path(*parts))


def enable_forwarding(version: int) -> None:
    """IP forwarding for one family, as the bridge gateway needs (reference: ip_forward /
    ipv6 conf/all/forwarding)."""
    if version == 4:
        ensure(1, "net", "ipv4", "ip_forward")
    elif exists("net", "ipv6", "conf", "all", "forwarding"):
        ensure(1, "net", "ipv6", "conf", "all", "forwarding")
