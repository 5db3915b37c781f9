"""Clear stale UDP conntrack entries for a newly mapped host port.

A UDP flow to a host port that existed before the DNAT rule (e.g. a client retrying
while the pod restarts) keeps its old un-NATed conntrack entry and would never reach the
pod. We shell out to conntrack(8); the child inherits the calling thread's netns.
"""

from __future__ import annotations

import shutil
import subprocess
from logging import getLogger

log = getLogger(__name__)


def delete_udp_port(host_port: int, version: int) -> None:
    tool = shutil.which("conntrack") or shutil.which("conntrack", path="/usr/sbin:/sbin")
    if tool is None:
        log.warning("conntrack(8) not found; stale UDP entries for port %d are left", host_port)
        return
    argv = [
        tool,
        "-D",
        "-f",
        "ipv4" if version == 4 else "ipv6",
        "-p",
        "udp",
        "--orig-port-dst",
        str(host_port),
    ]
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        log.warning("conntrack -D for udp port %d failed: %s", host_port, exc)
        return
    if proc.returncode not in (0, 1):  # 1 means "no entry matched"
        log.warning("conntrack -D for udp port %d: %s", host_port, proc.stderr.strip())
