"""SIGKILL the daemon in the middle of a burst of ADDs, restart it, run GC: nothing is left
that does not belong to a live attachment (lease, firewall rule, veth, cache entry)."""

from __future__ import annotations

import shutil
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from metacni.sim.traffic import ping
from metacni.spec.errors import CNIError
from metacni_testkit.netns import links, netns_path, run
from metacni_testkit.nodes import Node, load, rt, run_in_node
from metacni_testkit.wait import wait_for

PODS = 16


def _ruleset(node: str) -> str:
    out = ""
    if shutil.which("nft"):
        out += run("nft", "list", "ruleset", netns=node, check=False).stdout
    if shutil.which("iptables-save"):
        out += run("iptables-save", netns=node, check=False).stdout
    return out


def test_sigkill_during_burst_then_gc_leaves_only_live_attachments(box):
    with tempfile.TemporaryDirectory(prefix="mccrash-") as work:
        node = Node(box=box, name=box.netns("mcnode"), root=Path(work), mode="daemon")
        node.start_daemon("--concurrency", "8")
        try:
            raw = node.conflist(portmap=True, subnet="10.84.0.0/24")
            net = load(raw)
            runner = node.runner()
            pods = {f"k{i:02d}": (netns_path(box.netns("mcpod")), 21000 + i) for i in range(PODS)}
            done = threading.Condition()
            ok: dict[str, str] = {}
            failed: list[str] = []

            def add(cid: str) -> None:
                path, port = pods[cid]
                caps = {"portMappings": [{"hostPort": port, "containerPort": 80, "protocol": "tcp"}]}
                try:
                    res = run_in_node(node, lambda: runner.add(net, rt(cid, path, capability_args=caps)))
                    with done:
                        ok[cid] = res.ips[0].address.split("/")[0]
                        done.notify_all()
                except CNIError:
                    with done:
                        failed.append(cid)
                        done.notify_all()

            with ThreadPoolExecutor(8) as pool:
                futures = [pool.submit(add, cid) for cid in pods]
                with done:
                    assert done.wait_for(lambda: len(ok) >= 3, timeout=120), (ok, failed)
                assert node.daemon is not None
                node.daemon.kill()  # SIGKILL, mid-burst
                for f in futures:
                    f.result(timeout=120)
            assert ok and failed, "the kill should have landed inside the burst"
            assert len(ok) + len(failed) == PODS

            # The runtime gives up on the failed sandboxes: their netns (and veth peers) go away.
            for cid in failed:
                name = pods[cid][0].rsplit("/", 1)[1]
                run("ip", "netns", "del", name)
                box.namespaces.remove(name)

            node.start_daemon("--concurrency", "8")
            run_in_node(node, lambda: runner.gc(net, [(cid, "eth0") for cid in ok]))

            assert sorted(e.container_id for e in runner.cache.entries(net.name)) == sorted(ok)
            leases = node.leases(net.name)
            assert sorted(leases) == sorted(ok.values()), (leases, ok)
            veths = [ln["ifname"] for ln in links(node.name) if ln["ifname"].startswith("veth")]
            assert len(veths) == len(ok), veths
            rules = _ruleset(node.name)
            for cid, (_, port) in pods.items():
                assert (str(port) in rules) == (cid in ok), (cid, port, cid in ok)
            for cid in ok:
                assert ping(pods[cid][0], "10.84.0.1")
        finally:
            if node.daemon is not None:
                node.daemon.kill()


def test_periodic_gc_reclaims_attachments_of_deleted_pods(box):
    """No DEL ever arrives for a pod deleted from the API whose sandbox the runtime removed
    (its netns is gone): the daemon's own GC cleans up. (While the netns exists GC keeps the
    attachment: tests/meta/test_meta_gc_status.py.)"""
    from metacni.kernel.netns import enter
    from metacni.sim.fakeapi import FakeAPIServer
    from metacni.spec.args import CniArgs

    with tempfile.TemporaryDirectory(prefix="mcgc-") as work:
        node = Node(box=box, name=box.netns("mcnode"), root=Path(work), mode="daemon")
        with enter(node.path):
            api = FakeAPIServer().start()
        try:
            kubeconfig = api.write_kubeconfig(Path(work) / "kubeconfig")
            for name in ("keep", "gone"):
                api.add_pod("default", name, node_name="node-1")
            node.start_daemon("--kubeconfig", str(kubeconfig), "--node-name", "node-1", "--no-routes",
                              "--cache-dir", str(node.root / "cache"), "--gc-period", "0.2", "--gc-grace", "0",
                              "--cni-path", str(node.bin_dir))
            raw = node.conflist(subnet="10.85.0.0/24")
            net = load(raw)
            runner = node.runner()
            pods = {}
            for name in ("keep", "gone"):
                pods[name] = netns_path(box.netns("mcpod"))
                args = CniArgs.parse(f"IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME={name}")
                run_in_node(node, lambda name=name, args=args: runner.add(net, rt(name, pods[name], args=args)))
            assert len(node.leases(net.name)) == 2
            api.delete_pod("default", "gone")
            run("ip", "netns", "del", pods["gone"].rsplit("/", 1)[1])  # the runtime removes the sandbox
            assert wait_for(lambda: [e.container_id for e in runner.cache.entries(net.name)] == ["keep"]), \
                node.daemon.log_text() if node.daemon else ""
            assert wait_for(lambda: len(node.leases(net.name)) == 1)
            assert wait_for(lambda: len([ln for ln in links(node.name) if ln["ifname"].startswith("veth")]) == 1)
            assert ping(pods["keep"], "10.85.0.1")
            assert node.daemon is not None
            # Logged after the pass returns, which may be after the cache, lease and link checks above.
            daemon = node.daemon
            assert wait_for(lambda: any(r.get("msg") == "periodic GC reclaimed attachments"
                                        for r in daemon.log_records())), daemon.log_text()
        finally:
            if node.daemon is not None:
                node.daemon.kill()
            api.stop()
