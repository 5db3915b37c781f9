"""Daemon-mode DEL hands the veth deletion to the link reaper (plugins/bridge/detach.py):
the daemon answers with the pod cut off, drains pending deletions on graceful shutdown, and
a SIGKILL between the answer and the deletion leaks nothing once GC has run.

The daemon's reaper is started held (``METACNI_REAPER_HOLD=1``) so that "DEL answered before
the deletion" is observed without timing.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from metacni.kernel.reaper import HOLD_ENV, MARK
from metacni.sim.unixhttp import unix_http
from metacni_testkit.daemon import start_daemon
from metacni_testkit.netns import links, netns_path
from metacni_testkit.nodes import Node, load, rt, run_in_node


def _start(node: Node, *, hold: bool) -> None:
    env = {**os.environ, HOLD_ENV: "1" if hold else "0"}
    node.daemon = start_daemon(node.root / "daemon", netns=node.name, env=env,
                               args=["--no-api", "--cache-dir", str(node.root / "daemon-cache"),
                                     "--conf-dir", str(node.conf_dir),
                                     "--pending-dir", str(node.cni_dir / "pending-del")])


@contextlib.contextmanager
def _held_daemon_node(box) -> Iterator[tuple[Node, Any, Any]]:
    """A node whose daemon's reaper starts held: (node, its runner, a bridge network)."""
    with tempfile.TemporaryDirectory(prefix="mcreap-") as work:
        node = Node(box=box, name=box.netns("mcnode"), root=Path(work), mode="daemon")
        _start(node, hold=True)
        try:
            yield node, node.runner(), load(node.conflist(subnet="10.86.0.0/24"))
        finally:
            if node.daemon is not None:
                node.daemon.kill()


def _veths(node: Node) -> dict[str, dict]:
    return {ln["ifname"]: ln for ln in links(node.name) if ln["ifname"].startswith("veth")}


def test_del_is_answered_before_the_deletion_and_gc_reclaims_after_sigkill(box):
    with tempfile.TemporaryDirectory(prefix="mcreap-") as work:
        node = Node(box=box, name=box.netns("mcnode"), root=Path(work), mode="daemon")
        _start(node, hold=True)
        try:
            net = load(node.conflist(subnet="10.86.0.0/24"))
            runner = node.runner()
            pods = {cid: netns_path(box.netns("mcpod")) for cid in ("r1", "r2", "r3")}
            for cid, path in pods.items():
                run_in_node(node, lambda cid=cid, path=path: runner.add(net, rt(cid, path)))
            assert len(_veths(node)) == 3

            run_in_node(node, lambda: runner.delete(net, rt("r1", pods["r1"])))
            detached = [v for v in _veths(node).values() if v.get("ifalias") == MARK]
            assert len(detached) == 1, _veths(node)
            assert "master" not in detached[0] and "UP" not in detached[0]["flags"]

            node.daemon.kill()  # SIGKILL: the held deletion is lost
            _start(node, hold=True)  # still held: only GC may reclaim it
            assert detached[0]["ifname"] in _veths(node)
            run_in_node(node, lambda: runner.gc(net, [("r2", "eth0"), ("r3", "eth0")]))
            assert detached[0]["ifname"] not in _veths(node) and len(_veths(node)) == 2

            # Graceful shutdown drains what the (held) reaper still has queued.
            run_in_node(node, lambda: runner.delete(net, rt("r2", pods["r2"])))
            assert len(_veths(node)) == 2
            assert node.daemon.stop() == 0
            assert len(_veths(node)) == 1
            node.daemon = None
            # Daemon stopped: the shim records the DEL; the next daemon carries it out before it
            # serves, and its graceful stop drains the deletion.
            run_in_node(node, lambda: runner.delete(net, rt("r3", pods["r3"])))
            assert len(_veths(node)) == 1
            _start(node, hold=True)
            assert not list((node.cni_dir / "pending-del").iterdir())
            assert node.daemon.stop() == 0
            node.daemon = None
            assert _veths(node) == {}
        finally:
            if node.daemon is not None:
                node.daemon.kill()


def _reaper_status(node: Node, wait: float = 0.0) -> dict:
    env = {"waitReaperIdle": str(wait)} if wait else {}
    assert node.daemon is not None
    query = "?" + urllib.parse.urlencode(env) if env else ""
    _, _, body = unix_http(node.daemon.socket, "GET", "/readyz" + query, timeout=wait + 10.0)
    return dict(json.loads(body)["reaper"])


def test_status_reports_the_reaper_and_waits_for_it_to_go_idle(box):
    """The daemon's status reply says whether the reaper still has deletions to do, and can
    wait for it (what e2e/test_churn.py waits on before its final snapshot)."""
    with _held_daemon_node(box) as (node, runner, net):
        pod = netns_path(box.netns("mcpod"))
        run_in_node(node, lambda: runner.add(net, rt("s1", pod)))
        assert _reaper_status(node)["idle"] is True
        run_in_node(node, lambda: runner.delete(net, rt("s1", pod)))
        held = _reaper_status(node, wait=0.2)  # bounded: the held reaper cannot go idle
        assert held["enabled"] and held["held"] and not held["idle"] and held["pending"] == 1, held
        assert len(_veths(node)) == 1

        node.daemon.kill()
        _start(node, hold=False)  # a fresh reaper (its start-up sweep takes the marked link)
        run_in_node(node, lambda: runner.add(net, rt("s2", pod)))
        run_in_node(node, lambda: runner.delete(net, rt("s2", pod)))
        done = _reaper_status(node, wait=10.0)
        assert done["idle"] and done["pending"] == 0 and done["failed"] == 0 and done["deleted"] >= 1, done
        assert _veths(node) == {}
