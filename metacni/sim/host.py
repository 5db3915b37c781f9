"""Commands, namespaces, processes and the state file of a run.

Teardown is driven by the run tag alone (namespaces named ``<tag>-*``, processes whose command
line names the run directory), so it works from the state file after a crash, and can never
touch a namespace or process some other party created.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any


class SimError(RuntimeError):
    """A step of building or probing the simulated cluster failed."""


def sh(*argv: str, netns: str | None = None, check: bool = True, timeout: float = 30,
       input: str | None = None) -> subprocess.CompletedProcess[str]:
    cmd = ["ip", "netns", "exec", netns, *argv] if netns else list(argv)
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, input=input)
    if check and proc.returncode != 0:
        raise SimError(f"{' '.join(cmd)} failed ({proc.returncode}): {proc.stderr.strip()}")
    return proc


def ip_batch(commands: Sequence[str], netns: str | None = None) -> None:
    """Several ``ip`` commands in one process (``ip -batch``): fast, and fails on the first error."""
    args = ["ip", "-n", netns] if netns else ["ip"]
    sh(*args, "-batch", "-", input="\n".join(commands) + "\n")


def netns_names() -> list[str]:
    out = sh("ip", "-j", "netns", "list").stdout.strip()
    return [str(e["name"]) for e in json.loads(out or "[]")]


def add_netns(name: str) -> None:
    sh("ip", "netns", "add", name)
    sh("ip", "-n", name, "link", "set", "lo", "up")


def del_netns(name: str) -> None:
    sh("ip", "netns", "del", name, check=False)


def netns_path(name: str) -> str:
    """The named netns' path, a string: it is what CNI_NETNS and the caches hold."""
    return f"/run/netns/{name}"


# ---------------------------------------------------------------------------------- processes
def spawn(argv: Sequence[str], log: Path, *, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    """A long-running child in its own session (a terminal's Ctrl-C or hang-up does not reach
    it; the run's teardown stops it), output to ``log``."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        return subprocess.Popen(list(argv), stdin=subprocess.DEVNULL, stdout=out, stderr=out, cwd="/",
                                env=env, start_new_session=True)


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def stop_pid(pid: int, marker: str, timeout: float = 10.0) -> None:
    """SIGTERM, then SIGKILL, a process -- only while its command line contains ``marker``
    (the run directory), so a recycled pid is never signalled."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        if marker not in cmdline(pid):
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)  # reap it when it is our child
            if marker not in cmdline(pid):
                return
            time.sleep(0.02)  # polling /proc for the exit; there is no pidfd wait for non-children here


# ---------------------------------------------------------------------------------- state file
def write_state(path: Path, state: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(state, indent=1))
    tmp.replace(path)


def read_states(state_dir: Path) -> list[dict[str, Any]]:
    out = []
    for f in sorted(state_dir.glob("*.json")) if state_dir.is_dir() else []:
        with contextlib.suppress(OSError, ValueError):
            data = json.loads(f.read_text())
            if isinstance(data, dict) and data.get("tag"):
                out.append(data)
    return out


def teardown(state: dict[str, Any]) -> list[str]:
    """Remove everything of one run: its processes, its ``<tag>-*`` namespaces (pods first,
    then nodes, then the underlay), its run directory and state file. Returns what was removed."""
    tag = str(state["tag"])
    run_dir = str(state["run_dir"])
    removed: list[str] = []
    for pid in state.get("pids", []):
        if run_dir in cmdline(int(pid)):
            stop_pid(int(pid), run_dir)
            removed.append(f"process {pid}")
    mine = [n for n in netns_names() if n.startswith(f"{tag}-")]
    order = {"pod": 0, "nod": 1}
    for name in sorted(mine, key=lambda n: order.get(n[len(tag) + 1:][:3], 2)):
        del_netns(name)
        removed.append(f"netns {name}")
    if run_dir and Path(run_dir).is_dir() and tag in run_dir:
        shutil.rmtree(run_dir, ignore_errors=True)
        removed.append(f"dir {run_dir}")
    state_file = Path(str(state.get("state_file", "")))
    if state_file.name == f"{tag}.json":
        state_file.unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            state_file.parent.rmdir()  # only when no other run is kept there
    return removed
