"""sysctl reads and writes in the calling thread's network namespace.

The kernel resolves /proc/sys/net/* against the *opening task's* netns, and a Python thread
is a task, so after :func:`metacni.kernel.netns.enter` these touch the entered namespace
only. Paths are given as parts, because interface names may contain dots (``cni0.100``).
"""

from __future__ import annotations

from pathlib import Path

ROOT = Path("/proc/sys")


def path(*parts: str) -> Path:
    """``/proc/sys/<parts...>``; each part is one path element (ValueError otherwise)."""
    for part in parts:
        if not part or "/" in part or part in (".", ".."):
            raise ValueError(f"invalid sysctl path component {part!r}")
    return ROOT.joinpath(*parts)


def read(*parts: str) -> str:
    return path(*parts).read_text().strip()


def write(value: str | int, *parts: str) -> None:
    path(*parts).write_text(str(value))


def ensure(value: str | int, *parts: str) -> bool:
    """Write ``value`` unless already set (a read is cheaper than a write); True if written."""
    if read(*parts) == str(value):
        return False
    write(value, *parts)
    return True


def exists(*parts: str) -> bool:
    return path(*parts).exists()


def enable_forwarding(version: int) -> None:
    """IP forwarding for one family, as the bridge gateway needs (reference: ip_forward /
    ipv6 conf/all/forwarding)."""
    if version == 4:
        ensure(1, "net", "ipv4", "ip_forward")
    elif exists("net", "ipv6", "conf", "all", "forwarding"):
        ensure(1, "net", "ipv6", "conf", "all", "forwarding")
