#!/usr/bin/env python3
"""Route reconciliation for a large cluster: N Node objects → N-1 host-gw routes.

Measures, inside a throwaway netns with an on-link /16 for the next hops: the first
reconciliation (all routes added), a no-op pass, and a pass after 10% of the nodes left and
10% changed address. Also the full path from the fake API: the daemon's node informer listing
N nodes. Target: N=5000 reconciled in under 2 s.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "testkit"))  # metacni_testkit, if not installed

from metacni.daemon.routes import desired_routes, reconcile  # noqa: E402
from metacni.daemon.rtbatch import RouteSocket  # noqa: E402
from metacni.kernel.netns import enter  # noqa: E402
from metacni_testkit.netns import netns_path, run, tag  # noqa: E402

PROTO = 201


def node(i: int, ip: str | None = None) -> dict[str, Any]:
    return {"metadata": {"name": f"n{i}"},
            "spec": {"podCIDR": f"10.{i // 256}.{i % 256}.0/24", "podCIDRs": [f"10.{i // 256}.{i % 256}.0/24"]},
            "status": {"addresses": [{"type": "InternalIP", "address": ip or f"100.64.{i // 250}.{1 + i % 250}"}]}}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--nodes", type=int, default=5000)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    n = args.nodes
    ns = tag("mcrt-", 8)
    run("ip", "netns", "add", ns)
    results: dict[str, Any] = {"nodes": n}
    try:
        run("ip", "link", "add", "ul0", "type", "veth", "peer", "name", "ul1", netns=ns)
        run("ip", "link", "set", "ul1", "up", netns=ns)
        run("ip", "addr", "add", "100.64.255.254/16", "dev", "ul0", netns=ns)
        run("ip", "link", "set", "ul0", "up", netns=ns)
        nodes = [node(i) for i in range(n)]
        with enter(netns_path(ns)), RouteSocket() as ipr:
            t0 = time.perf_counter()
            want = desired_routes(nodes, "n0")
            t_desired = time.perf_counter() - t0
            t0 = time.perf_counter()
            first = reconcile(ipr, want, PROTO)
            t_first = time.perf_counter() - t0
            t0 = time.perf_counter()
            noop = reconcile(ipr, desired_routes(nodes, "n0"), PROTO)
            t_noop = time.perf_counter() - t0
            churn = [nd for i, nd in enumerate(nodes) if i % 10 != 1]
            churn = [node(int(nd["metadata"]["name"][1:]), "100.64.254.1") if i % 10 == 2 else nd
                     for i, nd in enumerate(churn)]
            t0 = time.perf_counter()
            third = reconcile(ipr, desired_routes(churn, "n0"), PROTO)
            t_churn = time.perf_counter() - t0
        installed = len(run("ip", "route", "show", "proto", str(PROTO), netns=ns).stdout.splitlines())
        results.update({
            "desired_s": round(t_desired, 3),
            "first_s": round(t_first, 3), "first": vars(first),
            "noop_s": round(t_noop, 3), "noop": vars(noop),
            "churn_s": round(t_churn, 3), "churn": vars(third),
            "installed_after": installed,
        })
        results["informer_list_s"] = informer_list(nodes)
    finally:
        run("ip", "netns", "del", ns, check=False)
    print(json.dumps(results, indent=2))
    out = Path(args.out) if args.out else ROOT / "bench" / "results" / f"routes-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    return 0


def informer_list(nodes: list[dict[str, Any]]) -> float:
    """Seconds for the daemon's node informer to list and cache every Node from the fake API."""
    from metacni.daemon.kubecache import KubeCaches
    from metacni.sim.fakeapi import FakeAPIServer

    with FakeAPIServer() as api, tempfile.TemporaryDirectory() as tmp:
        for nd in nodes:
            api.add_node(nd["metadata"]["name"], nd["spec"]["podCIDRs"], nd["status"]["addresses"][0]["address"])
        kc = api.write_kubeconfig(Path(tmp) / "kc")
        caches = KubeCaches(str(kc), "n0")
        t0 = time.perf_counter()
        caches.nodes.start()
        caches.nodes.synced.wait(120)
        elapsed = time.perf_counter() - t0
        assert len(caches.nodes) == len(nodes)
        caches.stop()
    return round(elapsed, 3)


if __name__ == "__main__":
    sys.exit(main())
