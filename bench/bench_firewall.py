"""In-process firewall layer micro-benchmark: portmap + masq + forward ADD/DEL cycles.

Measures what the warm daemon pays per pod in :mod:`metacni.firewall`, without the shim,
netlink or the runtime: in one test-created node netns, ``--background`` attachments are
installed first (a node that already runs pods), then ``--cycles`` times one more pod's
portmap + masq + forward ADD and then DEL, each timed with ``perf_counter`` (wall) and
``process_time`` (CPU, user + kernel: steadier than wall on a loaded machine, and the
nf_tables commit work runs in the caller's context). Backend detection is left to the
library (no ``backend:``) unless ``--backend`` is given.
Prints medians/p90 per verb and the RSS growth over the cycles, and writes JSON.
Needs root; creates and removes only its own netns.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable


def _rss_kib() -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cycles", type=int, default=50)
    ap.add_argument("--background", type=int, default=100, help="attachments installed before timing")
    ap.add_argument("--backend", default=None, choices=[None, "nftables", "iptables"])
    ap.add_argument("--out", default=None)
    args = ap.parse_args()

    from metacni.firewall import backend as fw
    from metacni.firewall.identity import Attachment
    from metacni.firewall.masq import add_masquerade, del_masquerade
    from metacni.firewall.plan import FORWARD, PORTMAP, ForwardPlan, PortmapPlan, parse_addresses, parse_port_mappings
    from metacni.kernel import netns

    name = f"fwbench-{uuid.uuid4().hex[:6]}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    be = args.backend
    net = "benchnet"

    def ip(i: int) -> str:
        return f"10.{88 + i // 60000}.{(i // 250) % 240}.{i % 250 + 2}/16"

    def timed(steps: list[tuple[str, Callable[[], object]]]) -> dict[str, float]:
        t: dict[str, float] = {}
        w_all, c_all = time.perf_counter(), time.process_time()
        for key, step in steps:
            w0, c0 = time.perf_counter(), time.process_time()
            step()
            t[key], t[key + "_cpu"] = time.perf_counter() - w0, time.process_time() - c0
        t["total"], t["total_cpu"] = time.perf_counter() - w_all, time.process_time() - c_all
        return t

    def add(i: int) -> dict[str, float]:
        cid, addr = f"pod{i}", ip(i)
        att = Attachment(net, cid, "eth0")
        maps = parse_port_mappings([{"hostPort": 20000 + i, "containerPort": 80}])
        plan = PortmapPlan(att, maps, parse_addresses([addr])[0])  # type: ignore[arg-type]
        return timed([
            ("portmap", lambda: fw.add(plan, be)),
            ("masq", lambda: add_masquerade(net, cid, "eth0", [addr], backend=be,
                                            non_masquerade_cidrs=["10.96.0.0/12"])),
            ("forward", lambda: fw.add(ForwardPlan(att, parse_addresses([addr])), be)),
        ])

    def delete(i: int) -> dict[str, float]:
        cid = f"pod{i}"
        return timed([
            ("portmap", lambda: fw.delete(Attachment(net, cid, "eth0"), PORTMAP, be)),
            ("masq", lambda: del_masquerade(net, cid, "eth0", backend=be)),
            ("forward", lambda: fw.delete(Attachment(net, cid, "eth0"), FORWARD, be)),
        ])

    adds: list[dict[str, float]] = []
    dels: list[dict[str, float]] = []
    try:
        with netns.enter(f"/run/netns/{name}"):
            for i in range(args.background):
                add(i)
            rss0 = _rss_kib()
            for c in range(args.cycles):
                i = args.background + c
                adds.append(add(i))
                dels.append(delete(i))
            rss1 = _rss_kib()
            for i in range(args.background):
                delete(i)
        left = subprocess.run(["ip", "netns", "exec", name, "nft", "list", "ruleset"],
                              capture_output=True, text=True).stdout
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)

    def summary(rows: list[dict[str, float]]) -> dict[str, dict[str, float]]:
        out = {}
        for key in ("portmap", "masq", "forward", "total", "portmap_cpu", "masq_cpu", "forward_cpu", "total_cpu"):
            vals = sorted(r[key] * 1000 for r in rows)
            out[key] = {"median_ms": round(statistics.median(vals), 3),
                        "p90_ms": round(vals[int(0.9 * (len(vals) - 1))], 3)}
        return out

    doc = {
        "cycles": args.cycles, "background": args.background, "backend": be or "detect",
        "add": summary(adds), "del": summary(dels),
        "rss_kib_before_cycles": rss0, "rss_kib_after_cycles": rss1,
        "maxrss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
        "leftover_nft_ruleset_bytes": len(left),
        # heavy modules the firewall layer must not pull in on an nftables node
        "imported": sorted(m for m in ("iptc", "pyroute2") if m in sys.modules),
    }
    for verb in ("add", "del"):
        for cpu in (False, True):
            row = "  ".join(
                f"{k.removesuffix('_cpu')} {v['median_ms']:7.2f} ms (p90 {v['p90_ms']:.2f})"
                for k, v in doc[verb].items() if k.endswith("_cpu") == cpu
            )
            print(f"{verb.upper():4} {'cpu ' if cpu else 'wall'} {row}")
    print(f"RSS {rss0} -> {rss1} KiB over {args.cycles} cycles; leftover ruleset {len(left)} bytes; "
          f"imported: {', '.join(doc['imported']) or 'neither iptc nor pyroute2'}")
    text = json.dumps(doc, indent=2)
    if args.out:
        with open(args.out, "w") as fh:
            fh.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
