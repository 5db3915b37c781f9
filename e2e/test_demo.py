"""``metacni demo`` as a user runs it: twice in a row, each run succeeding and leaving the host's
interfaces, routes, rules, firewall and namespaces exactly as they were; --keep/--down; Ctrl-C."""

from __future__ import annotations

import contextlib
import difflib
import json
import os
import re
import shutil
import signal
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from metacni_testkit.netns import is_root

pytestmark = pytest.mark.skipif(not is_root(), reason="needs root")
# Other tests (and people) create and remove namespaces meanwhile; the demo's are all "mcdemo*".
DEMO_NETNS = re.compile(r"^mcdemo")
COUNTERS = re.compile(r"\[\d+:\d+\]|counter packets \d+ bytes \d+")
STATE_DIR = Path("/run/metacni-demo")


def _out(*argv: str) -> str:
    if not shutil.which(argv[0]):
        return f"{argv[0]}: not installed"
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    text = "\n".join(ln for ln in proc.stdout.splitlines() if not ln.startswith("#"))
    return COUNTERS.sub("", text)


def host_state() -> dict[str, str]:
    netns = json.loads(_out("ip", "-j", "netns", "list") or "[]")
    return {
        "netns": "\n".join(sorted(n["name"] for n in netns if DEMO_NETNS.match(n["name"]))),
        # bridge timers (hello_timer, gc_timer, ...) tick on their own: not a change the demo made
        "links": re.sub(r"\b(\w+_timer)\s+[\d.]+", r"\1 -", _out("ip", "-d", "link", "show")),
        "addrs": _out("ip", "addr", "show"),
        "routes": _out("ip", "route", "show", "table", "all"),
        "routes6": _out("ip", "-6", "route", "show", "table", "all"),
        "rules": _out("ip", "rule") + _out("ip", "-6", "rule"),
        "nft": _out("nft", "list", "ruleset"),
        "iptables": _out("iptables-save"),
        "iptables-legacy": _out("iptables-legacy-save"),
        "demo-state": "\n".join(sorted(p.name for p in STATE_DIR.iterdir())) if STATE_DIR.is_dir() else "",
    }


def demo(*args: str, cwd: Path, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["metacni", "demo", *args], capture_output=True, text=True, timeout=timeout, cwd=cwd)


def test_demo_as_a_user_runs_it(tmp_path: Path, box, demo_turn):
    """One test, scenarios in sequence: a kept demo would show up in a parallel test's snapshot,
    and ``--down`` removes every kept demo."""
    twice_leaves_the_host_as_found(tmp_path)
    keep_then_down(tmp_path, box)
    ctrl_c_tears_down(tmp_path)


def twice_leaves_the_host_as_found(tmp_path: Path):
    before = host_state()
    for run in (1, 2):
        proc = demo("--svg", str(tmp_path / f"demo{run}.svg"), cwd=tmp_path)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert "Connectivity matrix" in proc.stdout and "FAILED" not in proc.stdout
        assert "| ok" in proc.stdout and not re.search(r"\|\s+(--|NAT)", proc.stdout), proc.stdout
        assert "tearing down" in proc.stderr  # the progress indication
        root = ET.parse(tmp_path / f"demo{run}.svg").getroot()
        texts = " ".join(t.text or "" for t in root.iter("{http://www.w3.org/2000/svg}text"))
        for word in ("node-1", "node-3", "cni0", "ul0", "web-1", "net1 10.250.0.", "eth0 10.244."):
            assert word in texts, word
        after = host_state()
        for key in before:
            assert after[key] == before[key], f"run {run} changed the host's {key}:\n" + "\n".join(
                difflib.unified_diff(before[key].splitlines(), after[key].splitlines(), "before", "after",
                                     lineterm=""))


def keep_then_down(tmp_path: Path, box):
    # A namespace that looks like a demo's but is not one of its runs: never touched.
    decoy = box.netns("mcdemo0decoy")
    before = host_state()
    proc = demo("--keep", "--nodes", "2", "--svg", str(tmp_path / "d.svg"), cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    kept = [n for n in host_state()["netns"].splitlines() if n.startswith("mcdemo")]
    assert len(kept) >= 2 + 2, kept  # underlay, internet, nodes, pods are still there
    down = demo("--down", cwd=tmp_path)
    assert down.returncode == 0 and "removed demo" in down.stdout, down.stdout + down.stderr
    assert host_state() == before
    assert "no kept metacni demo" in demo("--down", cwd=tmp_path).stdout
    assert Path(f"/run/netns/{decoy}").exists()


def _signal_masks(pid: int) -> str:
    """A process's blocked, ignored and caught signals (/proc/PID/status), every thread."""
    out = []
    for task in sorted(Path(f"/proc/{pid}/task").iterdir()):
        with contextlib.suppress(OSError):
            lines = (task / "status").read_text().splitlines()
            out.append(task.name + " " + " ".join(x.replace("\t", "") for x in lines
                                                    if x.startswith(("Name", "SigBlk", "SigIgn", "SigCgt"))))
    return "; ".join(out)


def ctrl_c_tears_down(tmp_path: Path):
    """Ctrl-C in the middle of the build: ``--step`` holds the demo before each stage, so the
    signal arrives while it waits with its daemons up, however slow this test is to read."""
    before = host_state()
    # A shell without job control starts a background job with SIGINT ignored (POSIX), pytest
    # run that way passes it on, and an ignored signal stays ignored across fork and exec: the
    # demo, as it should, then ignores Ctrl-C. Handled here for the spawn, exec gives it the default.
    inherited = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        proc = subprocess.Popen(["metacni", "demo", "--step", "--svg", str(tmp_path / "d.svg")], cwd=tmp_path,
                                text=True, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    finally:
        signal.signal(signal.SIGINT, inherited)
    assert proc.stderr is not None and proc.stdin is not None
    seen = []
    masks = "not read: the stage line never came"
    for line in proc.stderr:
        seen.append(line)
        if "waiting for host-gw routes" in line:  # the daemons are up and ready
            masks = _signal_masks(proc.pid)
            proc.send_signal(signal.SIGINT)
            break
        if "(Enter: go on)" in line:
            proc.stdin.write("\n")
            proc.stdin.flush()
    out, err = proc.communicate(timeout=120)
    state = f"\ndemo's signal state: {masks}\nthe test's: {_signal_masks(os.getpid())}"
    assert proc.returncode == 130, "".join(seen) + err + state
    assert "interrupted" in err and "done: host left as it was found" in err
    assert host_state() == before
