"""Throwaway network namespaces and host links for tests, always cleaned up.

Uses the ``ip`` command on purpose: tests verify our netlink code with an independent tool.
Every name carries a per-process random tag so tests can run in parallel under xdist.
"""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field


def tag(prefix: str = "t", length: int = 6) -> str:
    """A short unique name (interface names are limited to 15 bytes)."""
    return f"{prefix}{uuid.uuid4().hex[:length]}"


def run(*argv: str, netns: str | None = None, check: bool = True, timeout: float = 30,
        input: str | None = None) -> subprocess.CompletedProcess[str]:
    cmd = list(argv)
    if netns:
        cmd = ["ip", "netns", "exec", netns, *cmd]
    return subprocess.run(cmd, check=check, capture_output=True, text=True, timeout=timeout, input=input)


def netns_path(name: str) -> str:
    return f"/run/netns/{name}"


@dataclass
class Sandbox:
    """Namespaces and host links a test created; ``close`` removes all of them."""

    namespaces: list[str] = field(default_factory=list)
    host_links: list[str] = field(default_factory=list)

    def netns(self, prefix: str = "mcns") -> str:
        name = tag(prefix + "-", 10)
        run("ip", "netns", "add", name)
        self.namespaces.append(name)
        run("ip", "link", "set", "lo", "up", netns=name)
        return name

    def own_link(self, name: str) -> str:
        """Record a host link (a bridge, a veth) that must be deleted at the end."""
        self.host_links.append(name)
        return name

    def close(self) -> None:
        for link in reversed(self.host_links):
            run("ip", "link", "del", link, check=False)
        for ns in reversed(self.namespaces):
            run("ip", "netns", "del", ns, check=False)
        self.host_links.clear()
        self.namespaces.clear()


@contextmanager
def sandbox() -> Iterator[Sandbox]:
    box = Sandbox()
    try:
        yield box
    finally:
        box.close()


def links(netns: str | None = None) -> list[dict]:
    out = run("ip", "-j", "link", "show", netns=netns).stdout
    return json.loads(out or "[]")


def link_names(netns: str | None = None) -> set[str]:
    return {entry["ifname"] for entry in links(netns)}


def addresses(ifname: str, netns: str | None = None) -> list[str]:
    out = run("ip", "-j", "addr", "show", "dev", ifname, netns=netns).stdout
    data = json.loads(out or "[]")
    return [f"{a['local']}/{a['prefixlen']}" for entry in data for a in entry.get("addr_info", [])
            if a.get("scope") != "link"]


def is_root() -> bool:
    return os.geteuid() == 0
