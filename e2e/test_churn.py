"""Churn: 200 pods created and deleted across three nodes, some DELs after their namespace is
gone. Afterwards nothing of them remains: no lease, firewall rule, route, veth or cache entry.

A daemon answers DEL once the pod's veth is cut off and leaves its deletion to the link
reaper (metacni.kernel.reaper). Snapshots therefore first wait until every node's reaper
reports idle -- its own condition, from the daemon's status reply -- so a veth still seen
afterwards is a leak, not a deletion in progress (issue #14 item 8: under a loaded full-suite
run the final snapshot once caught a veth the reaper was still deleting)."""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from metacni.sim import Cluster, Pod
from metacni.sim.unixhttp import unix_http
from metacni_testkit.firewall_testbed import ruleset
from metacni_testkit.netns import link_names, run

PODS = 200
WAVE = 50
WORKERS = 6


def leases(ipam_dir: Path) -> list[str]:
    """host-local lease files (an address per file), without the lock and last-reserved files."""
    return sorted(str(p) for p in ipam_dir.rglob("*") if p.is_file() and p.name != "lock"
                  and not p.name.startswith("last_reserved_ip"))


def cache_files(root: Path) -> list[str]:
    return sorted(str(p) for sub in ("cni", "daemon-cache", "runtime-cache") for p in (root / sub).rglob("*")
                  if p.is_file() and not p.name.endswith(".lock"))


def routes(netns: str) -> list[str]:
    data = json.loads(run("ip", "-j", "route", "show", "table", "all", netns=netns).stdout or "[]")
    # The kernel's IPv6 link-local/multicast routes and the "linkdown" flag follow the bridge's
    # carrier (ports come and go); they are not what the plugins own.
    return sorted(json.dumps({k: v for k, v in r.items() if k != "flags"}, sort_keys=True) for r in data
                  if not (r.get("protocol") == "kernel"
                          and (":" in str(r.get("dst", "")) or r.get("type") == "multicast")))


def wait_reapers_idle(cluster: Cluster, timeout: float = 60.0) -> None:
    """Every node's daemon reports its link reaper idle (the daemon waits on the reaper's own
    condition, up to 5 s per request; bounded by ``timeout`` overall)."""
    deadline = time.monotonic() + timeout
    for node in cluster.plan.nodes:
        socket = cluster.runtimes[node.name].socket
        _, _, out = unix_http(socket, "GET", "/readyz", timeout=15.0)
        if not json.loads(out)["reaper"]["idle"]:  # what a snapshot without this wait would have seen
            print(f"{node.name}: reaper busy at snapshot time: {json.loads(out)['reaper']}")
        while True:
            _, _, out = unix_http(socket, "GET", "/readyz?waitReaperIdle=5", timeout=15.0)
            reaper = json.loads(out)["reaper"]
            assert reaper["enabled"], reaper  # the daemon defers deletions: this test covers that path
            assert reaper["failed"] == 0, reaper  # a deletion the reaper gave up on is a leak
            if reaper["idle"]:
                break
            assert time.monotonic() < deadline, f"{node.name}: link reaper still busy after {timeout}s: {reaper}"


def snapshot(cluster: Cluster) -> dict[str, object]:
    wait_reapers_idle(cluster)
    out: dict[str, object] = {"net1": leases(cluster.plan.run_dir / "net1-ipam")}
    for node in cluster.plan.nodes:
        root = cluster.node_dir(node)
        out[node.name] = {
            "links": sorted(link_names(node.netns)),
            "routes": routes(node.netns),
            "rules": run("ip", "rule", netns=node.netns).stdout,
            "firewall": ruleset(node.netns),
            "leases": leases(root / "ipam"),
            "cache": cache_files(root),
        }
    return out


def test_churn_200_pods_leaves_nothing(cluster: Cluster):
    nodes = cluster.plan.nodes
    # Warm-up: the first pod of a node creates the bridge (it stays, as with the reference plugin).
    warm = cluster.add_pods([{"name": f"warm-{n.index}", "node": n.name, "networks": "blue"} for n in nodes])
    for pod in warm:
        cluster.del_pod(pod)
    before = snapshot(cluster)
    assert not before["net1"] and all(not before[n.name]["leases"] for n in nodes)  # type: ignore[index]

    t0 = time.monotonic()
    # Rolling waves, as a busy node sees: WAVE pods up at once, then torn down, PODS in all.
    for start in range(0, PODS, WAVE):
        specs = [{"name": f"churn-{i}", "node": nodes[i % len(nodes)].name,
                  "networks": "blue" if i % 4 == 0 else None,
                  "host_port": 31000 + i if i % 10 == 0 else None} for i in range(start, start + WAVE)]
        pods = cluster.add_pods(specs, workers=WORKERS)
        ips = [p.ip for p in pods]
        assert len(set(ips)) == WAVE
        mid = snapshot(cluster)
        assert sum(len(mid[n.name]["leases"]) for n in nodes) == WAVE  # type: ignore[index]
        assert len(mid["net1"]) == len([s for s in specs if s["networks"]])  # type: ignore[arg-type]

        def delete(pod: Pod) -> None:
            cluster.del_pod(pod, netns_first=int(pod.name.split("-")[1]) % 7 == 3)

        with ThreadPoolExecutor(WORKERS) as pool:
            list(pool.map(delete, pods))
    total = time.monotonic() - t0

    after = snapshot(cluster)
    for key in before:
        assert after[key] == before[key], key
    assert not cluster.pods
    print(f"churn: {PODS} pods ADD+DEL in {total:.1f}s ({cluster.plan.backend})")
