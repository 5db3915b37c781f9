#!/usr/bin/env python3
"""Pod ADD/DEL latency: reference Go chain vs metacni daemon mode vs metacni standalone mode.

Every mode is driven by the same warm libcni runtime (bench/libcnidriver, Go, like containerd)
inside one node netns, on real pod namespaces, with the same primary network: bridge (ipMasq,
gateway) + host-local + portmap with one hostPort per pod. metacni modes run that chain as the
primary of ``00-metacni.conf`` (the production shape: one ``metacni`` exec per call):

- reference:    /usr/lib/cni binaries (Debian containernetworking-plugins)
- daemon:       the installed static binDir shim (shim/metacni-shim.c) → warm ``metacni daemon``
                (watch caches on the fake API) on the node's interpreter, as the image runs it:
                Debian's python3 with a wheel install of this tree (node venv)
- standalone:   ``metacni`` the console script (node venv) as the plugin, no daemon and no API: the
                pod annotations arrive in runtimeConfig; the call runs in-process
- daemon-chain: the plain conflist with the static shim installed as bridge/host-local/portmap

The modes are interleaved: each phase (sequential, then concurrency 8) runs in ``--rounds`` rounds,
and each round runs one batch (ADD all, then DEL all) of every mode in a rotating order, so the
machine's drift falls on all modes alike. Every pod of a phase (its netns, its API object) is
created before the phase's first batch and removed after its last, as a runtime creates the netns
before ADD: the kernel's asynchronous teardown of a deleted netns never falls on a later batch.
After a daemon batch the bench waits for the daemon's link reaper and network-status writes, and
before every batch for a quiet machine (:func:`settle`).

Also: the floor (the same netlink work in one warm process), the shim round trip alone, API
requests per ADD (fake API counters) and the daemon's peak RSS after ``--rss-pods`` pods.
Prints a table, writes JSON to bench/results/ and regenerates the figures section of
bench/README.md (between its markers) from that JSON; ``--render JSON`` does only the last step.
Needs root; touches only its own netns.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "testkit"))  # metacni_testkit, if not installed

from bench_shim import shim_roundtrip  # noqa: E402

from metacni.daemon.install import install_shim  # noqa: E402
from metacni.kernel.netns import enter  # noqa: E402
from metacni.meta.install import POD_ANNOTATIONS_CAP, write_node_config  # noqa: E402
from metacni.sim.fakeapi import FakeAPIServer  # noqa: E402
from metacni_testkit.daemon import DaemonProc, install_console_plugin, start_daemon  # noqa: E402
from metacni_testkit.netns import netns_path, run, tag  # noqa: E402

DRIVER_SRC = ROOT / "bench" / "libcnidriver"
BUILD = Path(os.environ.get("METACNI_BENCH_BUILD", "/tmp/metacni-bench-build"))
NODE_NAME = "bench-node"
NODE_PYTHON = "/usr/bin/python3"
README = ROOT / "bench" / "README.md"


def build_driver() -> Path:
    out = BUILD / "libcnidriver"
    src = DRIVER_SRC / "main.go"
    if out.exists() and out.stat().st_mtime >= src.stat().st_mtime:
        return out
    BUILD.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, GOPATH="/usr/share/gocode", GO111MODULE="off", GOFLAGS="", GOCACHE=str(BUILD / "gocache"))
    subprocess.run(["go", "build", "-o", str(out), "."], cwd=DRIVER_SRC, env=env, check=True, timeout=600)
    return out


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(round(q * (len(s) - 1))))]


def summary(values: list[float]) -> dict[str, float]:
    return {"n": len(values), "median_ms": round(statistics.median(values), 2), "p90_ms": round(pct(values, 0.9), 2),
            "mean_ms": round(statistics.fmean(values), 2)}


class Driver:
    """One warm libcni process in the node netns; requests are pipelined, answers matched by id."""

    def __init__(self, binary: Path, node: str, cni_path: str, cache_dir: str, env: dict[str, str]) -> None:
        full_env = dict(os.environ, CNI_PATH=cni_path, CNI_CACHE_DIR=cache_dir, **env)
        self.proc = subprocess.Popen(["ip", "netns", "exec", node, str(binary)], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, env=full_env, text=True, bufsize=1)
        self._next = 0
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._replies: dict[int, dict[str, Any]] = {}
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            rep = json.loads(line)
            with self._cond:
                self._replies[rep["id"]] = rep
                self._cond.notify_all()

    def send(self, **req: Any) -> int:
        with self._lock:
            self._next += 1
            rid = self._next
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps({"id": rid, **req}) + "\n")
        self.proc.stdin.flush()
        return rid

    def wait(self, rid: int, timeout: float = 300) -> dict[str, Any]:
        with self._cond:
            if not self._cond.wait_for(lambda: rid in self._replies, timeout):
                raise TimeoutError(f"request {rid} unanswered")
            return self._replies.pop(rid)

    def close(self) -> None:
        if self.proc.stdin:
            self.proc.stdin.close()
        self.proc.wait(60)


class Pods:
    def __init__(self, api: FakeAPIServer) -> None:
        self.api = api
        self.netns: list[str] = []

    def make(self, n: int, prefix: str) -> list[dict[str, Any]]:
        out = []
        for _ in range(n):
            name = tag("mcbp-", 10)
            run("ip", "netns", "add", name)
            self.netns.append(name)
            pod = tag(prefix, 8)
            self.api.add_pod("default", pod, node_name=NODE_NAME)
            out.append({"netns": netns_path(name), "cid": tag("c", 16), "pod": pod, "ns_name": name})
        return out

    def drop(self, pods: list[dict[str, Any]]) -> None:
        for p in pods:
            run("ip", "netns", "del", p["ns_name"], check=False)
            self.netns.remove(p["ns_name"])
            with contextlib.suppress(Exception):
                self.api.delete_pod("default", p["pod"])

    def close(self) -> None:
        for name in self.netns:
            run("ip", "netns", "del", name, check=False)


def _request(op: str, conf: str, pod: dict[str, Any], port: int, annotations: bool) -> dict[str, Any]:
    caps: dict[str, Any] = {"portMappings": [{"hostPort": port, "containerPort": 80, "protocol": "tcp"}]}
    if annotations:  # what a CRI runtime sends; the meta plugin then reads nothing from the API
        caps[POD_ANNOTATIONS_CAP] = {}
    return {"op": op, "conf": conf, "netns": pod["netns"], "cid": pod["cid"], "ifname": "eth0",
            "args": [["IgnoreUnknown", "1"], ["K8S_POD_NAMESPACE", "default"], ["K8S_POD_NAME", pod["pod"]],
                     ["K8S_POD_INFRA_CONTAINER_ID", pod["cid"]]],
            "caps": caps}


def run_ops(driver: Driver, op: str, conf: str, pods: list[dict[str, Any]], concurrency: int,
            port_base: int, annotations: bool = False) -> tuple[list[float], float]:
    """Per-op latencies and the wall time of the whole batch; any error aborts the benchmark."""
    pending: list[int] = []
    times: list[float] = []
    t0 = time.monotonic()

    def collect(rid: int) -> None:
        rep = driver.wait(rid)
        if rep["error"]:
            raise RuntimeError(f"{op} failed: {rep['error']}")
        times.append(rep["ms"])

    for i, pod in enumerate(pods):
        if len(pending) >= concurrency:
            collect(pending.pop(0))
        pending.append(driver.send(**_request(op, conf, pod, port_base + i, annotations)))
    for rid in pending:
        collect(rid)
    return times, time.monotonic() - t0


def floor(node: str, n: int) -> dict[str, Any]:
    """The kernel work of one bridge ADD/DEL in a warm process, in the fewest round trips the
    kernel allows, on metacni's stdlib rtnetlink: (1) the veth created up, on the bridge, its
    peer born in the pod netns; (2) in the pod, the peer's index; (3) address, link up and
    default route in one batch. DEL deletes the veth (one request, synchronous)."""
    import ipaddress

    from metacni.kernel import links
    from metacni.netlink import rtnl as nl
    from metacni.netlink.rtnl import rtnl
    from metacni.sim.traffic import in_netns

    adds: list[float] = []
    dels: list[float] = []
    names = [tag("mcfl-", 10) for _ in range(n)]
    for name in names:
        run("ip", "netns", "add", name)
    gateway = ipaddress.ip_address("10.201.0.1")
    try:
        def work() -> None:
            with rtnl() as ipr:
                br, _ = links.ensure_bridge(ipr, "flr0")
                ipr.request(nl.addr(nl.RTM_NEWADDR, br.index, ipaddress.ip_interface("10.201.0.1/16")))
                links.set_up(ipr, br.index)
                for i, name in enumerate(names):
                    t0 = time.perf_counter()
                    links.create_veth_in_netns(ipr, f"vfl{i}", "eth0", netns_path(name), master=br.index)
                    with enter(netns_path(name)), rtnl() as pod:
                        eth0 = nl.parse_link(pod.request(nl.getlink("eth0"))[0]).index
                        _all_ok(pod.batch([
                            nl.addr(nl.RTM_NEWADDR, eth0,
                                    ipaddress.ip_interface(f"10.201.{1 + i // 250}.{1 + i % 250}/16")),
                            nl.newlink(nl.LinkSpec(index=eth0, up=True), create=False),
                            nl.route(nl.RTM_NEWROUTE, nl.RouteMsg(dst=ipaddress.ip_network("0.0.0.0/0"),
                                                                  gateway=gateway)),
                        ]))
                    adds.append((time.perf_counter() - t0) * 1000)
                for i in range(len(names)):
                    t0 = time.perf_counter()
                    links.delete_link(ipr, f"vfl{i}")
                    dels.append((time.perf_counter() - t0) * 1000)
                links.delete_link(ipr, "flr0")

        in_netns(netns_path(node), work)
    finally:
        for name in names:
            run("ip", "netns", "del", name, check=False)
    return {"add": summary(adds), "del": summary(dels)}


def _all_ok(replies: list[Any]) -> None:
    """Raise the first error of a netlink batch."""
    for reply in replies:
        if isinstance(reply, Exception):
            raise reply


def served(daemon: DaemonProc | None) -> list[tuple[str, float]]:
    """(verb, ms) of every call the daemon logged: its own share of each call's latency."""
    if daemon is None:
        return []
    return [(r.get("verb", ""), float(r["ms"])) for r in daemon.log_records() if r.get("msg") == "served"]


def _busy_jiffies() -> tuple[int, int]:
    """(busy, total) CPU jiffies of the whole machine, from /proc/stat."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return sum(fields) - idle, sum(fields)


def settle(daemon: DaemonProc | None, window: float = 0.1, quiet: float = 0.15, limit: float = 10.0) -> bool:
    """Wait until the machine is quiet: one ``window`` in which at most ``quiet`` of the CPUs'
    time was busy (the daemon's informers catching up with new pods, the kernel's work queues
    finishing a batch's teardown). Gives up after ``limit`` seconds; False then."""
    if daemon is not None:
        daemon.status_written(60)
    deadline = time.monotonic() + limit
    busy0, total0 = _busy_jiffies()
    while time.monotonic() < deadline:
        time.sleep(window)
        busy1, total1 = _busy_jiffies()
        if total1 > total0 and (busy1 - busy0) / (total1 - total0) <= quiet:
            return True
        busy0, total0 = busy1, total1
    return False


def rss_kib(pid: int) -> dict[str, int]:
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmHWM", "VmRSS"):
            out[key] = int(value.split()[0])
    return out


def node_install(venv: Path) -> str:
    """A venv holding a regular (wheel) install of this tree and its dependencies, as a node would
    have: bytecode compiled at install, no editable-install finder, no developer .pth files."""
    run(NODE_PYTHON, "-m", "venv", "--without-pip", str(venv))
    site = next((venv / "lib").glob("python3*/site-packages"))
    run(sys.executable, "-m", "pip", "install", "-q", "--target", str(site), str(ROOT), timeout=600)
    return str(venv / "bin" / "python3")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pods", type=int, default=40, help="pods per sequential run")
    ap.add_argument("--concurrent-pods", type=int, default=80, help="pods per concurrency-8 run")
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=5,
                    help="each phase runs in this many rounds of one batch per mode (interleaved)")
    ap.add_argument("--rss-pods", type=int, default=500)
    ap.add_argument("--modes", default="reference,daemon,standalone,daemon-chain")
    ap.add_argument("--no-firewall", action="store_true",
                    help="diagnosis: primary without ipMasq and portmap (bridge + host-local only)")
    ap.add_argument("--node-python", default=None,
                    help="python with metacni installed, for the daemon and standalone mode (default: a fresh venv "
                         "of Debian's python3 with a wheel install of this tree, as in the image)")
    ap.add_argument("--out", default=None)
    ap.add_argument("--readme", default=str(README), help="README whose figures section is regenerated")
    ap.add_argument("--no-readme", action="store_true", help="leave the README alone")
    ap.add_argument("--render", default=None, metavar="JSON",
                    help="only regenerate the README's figures section from an earlier run's JSON")
    args = ap.parse_args()
    if args.render:
        source = Path(args.render)
        update_readme(Path(args.readme), render_figures(json.loads(source.read_text()), source.name))
        print(f"{args.readme}: figures regenerated from {args.render}")
        return 0
    modes = [m for m in args.modes.split(",") if m]
    driver_bin = build_driver()
    results: dict[str, Any] = {"machine": {"cpus": os.cpu_count(), "load": os.getloadavg()}, "modes": {}}
    node = tag("mcbench-", 8)
    run("ip", "netns", "add", node)
    run("ip", "link", "set", "lo", "up", netns=node)
    work = Path(tempfile.mkdtemp(prefix="mcbench-"))
    with enter(netns_path(node)):
        api = FakeAPIServer().start()
    pods = Pods(api)
    daemon: DaemonProc | None = None
    try:
        kubeconfig = api.write_kubeconfig(work / "kubeconfig", as_json=True)
        api.add_node(NODE_NAME, "10.200.0.0/16", "192.168.99.1")
        conf_dir = work / "net.d"
        conf_dir.mkdir()
        primary = conf_dir / "10-primary.conflist"
        plugins: list[dict[str, Any]] = [
            {"type": "bridge", "bridge": "cni0", "isGateway": True, "ipMasq": not args.no_firewall,
             "ipam": {"type": "host-local", "dataDir": str(work / "ipam"), "ranges": [[{"subnet": "10.200.0.0/16"}]]}}]
        if not args.no_firewall:
            plugins.append({"type": "portmap", "capabilities": {"portMappings": True}})
        results["chain"] = [p["type"] for p in plugins] + (["ipMasq"] if not args.no_firewall else [])
        primary.write_text(json.dumps({"cniVersion": "1.0.0", "name": "benchnet", "plugins": plugins}))
        meta_conf = write_node_config(conf_dir, kubeconfig=str(kubeconfig), cni_dir=str(work / "cni"),
                                      bin_dir="/usr/lib/cni")
        alone_dir = work / "net.d-standalone"  # no kubeconfig: annotations come in runtimeConfig
        alone_dir.mkdir()
        shutil.copy(primary, alone_dir / primary.name)
        alone_conf = write_node_config(alone_dir, cni_dir=str(work / "cni"), bin_dir="/usr/lib/cni")
        bin_daemon = work / "bin-daemon"
        install_shim(bin_daemon, aliases=("bridge", "host-local", "portmap"))
        bin_standalone = work / "bin-standalone"
        # The node's interpreter, as the image has it: Debian's python3 with this tree and its
        # dependencies installed as wheels. The daemon and standalone mode both run on it.
        node_python = args.node_python or (node_install(work / "node-venv")
                                           if any(m.startswith(("standalone", "daemon")) for m in modes)
                                           else sys.executable)
        install_console_plugin(bin_standalone, python=node_python)
        if any(m.startswith("daemon") for m in modes):
            daemon = start_daemon(work / "daemon", netns=node, args=[
                "--kubeconfig", str(kubeconfig), "--node-name", NODE_NAME, "--no-routes", "--gc-period", "0",
                "--no-regenerate-config", "--conf-dir", str(conf_dir), "--cache-dir", str(work / "cni"),
                "--cni-path", "/usr/lib/cni",
                "--concurrency", str(args.concurrency)], python=node_python)
        setups = {
            "reference": (str(primary), "/usr/lib/cni", {}),
            "daemon": (str(meta_conf), str(bin_daemon), {"METACNI_SOCKET": daemon.socket if daemon else ""}),
            "standalone": (str(alone_conf), str(bin_standalone), {"METACNI_SOCKET": str(work / "absent.sock")}),
            "daemon-chain": (str(primary), str(bin_daemon), {"METACNI_SOCKET": daemon.socket if daemon else ""}),
        }
        port = 30000
        drivers = {mode: Driver(driver_bin, node, setups[mode][1], str(work / f"cache-{mode}"), setups[mode][2])
                   for mode in modes}
        acc: dict[str, dict[str, dict[str, Any]]] = {
            mode: {label: {"add": [], "del": [], "add_wall": 0.0, "del_wall": 0.0, "n": 0, "inside": [],
                           "reads": 0, "writes": 0} for label in ("sequential", "concurrent")} for mode in modes}
        try:
            # Interleaved: each phase runs in rounds, and every round runs one batch of every mode
            # (the order rotating), so the machine's drift during the run falls on all modes alike.
            for label, n, conc in (("sequential", args.pods, 1), ("concurrent", args.concurrent_pods,
                                                                 args.concurrency)):
                per_round = max(1, -(-n // args.rounds))
                # Every pod of the phase (its netns, its API object) exists before the first batch
                # and goes after the last: a runtime creates the netns before ADD, and the kernel's
                # teardown of a deleted netns (an asynchronous workqueue) must not fall on the
                # next batch, whichever mode it is.
                phase_pods = {(rnd, mode): pods.make(per_round, mode[:3])
                              for rnd in range(args.rounds) for mode in modes}
                settle(daemon)
                for rnd in range(args.rounds):
                    for mode in modes[rnd % len(modes):] + modes[:rnd % len(modes)]:
                        conf, _, _ = setups[mode]
                        a = acc[mode][label]
                        batch = phase_pods[(rnd, mode)]
                        api.reset_counts()
                        served_before = len(served(daemon)) if mode.startswith("daemon") else 0
                        add, add_wall = run_ops(drivers[mode], "add", conf, batch, conc, port, mode == "standalone")
                        for (vb, _), v in api.counts.items():
                            if vb in ("get", "list"):
                                a["reads"] += v
                            elif vb in ("patch", "update", "create"):
                                a["writes"] += v
                        dele, del_wall = run_ops(drivers[mode], "del", conf, batch, conc, port, mode == "standalone")
                        if mode.startswith("daemon"):
                            a["inside"] += served(daemon)[served_before:]
                        port += per_round
                        if mode.startswith("daemon") and daemon is not None:
                            daemon.reaper_idle(60)  # its veth deletions must not fall on the next batch
                        settle(daemon)  # nor its network-status writes (settle waits for them)
                        a["add"] += add
                        a["del"] += dele
                        a["add_wall"] += add_wall
                        a["del_wall"] += del_wall
                        a["n"] += per_round
                for batch in phase_pods.values():
                    pods.drop(batch)
                settle(daemon)
            for mode in modes:
                entry: dict[str, Any] = {}
                for label in ("sequential", "concurrent"):
                    a = acc[mode][label]
                    entry[label] = {"add": summary(a["add"]), "del": summary(a["del"]),
                                    "add_per_s": round(a["n"] / a["add_wall"], 1),
                                    "del_per_s": round(a["n"] / a["del_wall"], 1)}
                    if mode.startswith("daemon"):
                        inside = a["inside"]
                        entry.setdefault("daemon_side", {})[label] = {
                            verb.lower(): summary([ms for v, ms in inside if v == verb]) if inside else None
                            for verb in ("ADD", "DEL")}
                    if label == "sequential":
                        entry["api_per_add"] = {"reads": round(a["reads"] / a["n"], 2),
                                                "writes": round(a["writes"] / a["n"], 2)}
                    s, c = entry[label]["add"], entry[label]["del"]
                    print(f"{mode:13s} {label:10s} ADD median {s['median_ms']:7.1f} ms p90 {s['p90_ms']:7.1f}  "
                          f"DEL median {c['median_ms']:7.1f} ms p90 {c['p90_ms']:7.1f}", flush=True)
                results["modes"][mode] = entry
            if "daemon" in modes and daemon is not None and args.rss_pods:
                conf = setups["daemon"][0]
                batch = pods.make(args.rss_pods, "rss")
                run_ops(drivers["daemon"], "add", conf, batch, args.concurrency, port)
                entry = results["modes"]["daemon"]
                entry["rss_after_pods"] = {"pods": args.rss_pods, **rss_kib(daemon.proc.pid)}
                run_ops(drivers["daemon"], "del", conf, batch, args.concurrency, port)
                port += args.rss_pods
                pods.drop(batch)
                entry["shim_roundtrip"] = shim_roundtrip(daemon.socket, bin_daemon / "metacni", 100)
                print(f"daemon RSS after {args.rss_pods} pods: {entry['rss_after_pods']}", flush=True)
        finally:
            for driver in drivers.values():
                driver.close()
        results["floor"] = floor(node, max(args.pods, 20))
        ref = results["modes"].get("reference")
        ratios: dict[str, Any] = {}
        if ref:
            for mode, entry in results["modes"].items():
                if mode == "reference":
                    continue
                ratios[mode] = {
                    f"{label}_{verb}": round(entry[label][verb]["median_ms"] / ref[label][verb]["median_ms"], 3)
                    for label in ("sequential", "concurrent") for verb in ("add", "del")}
        results["ratios_vs_reference"] = ratios
    finally:
        if daemon is not None:
            daemon.stop()
        pods.close()
        api.stop()
        run("ip", "netns", "del", node, check=False)
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps({k: v for k, v in results.items()}, indent=2))
    out = Path(args.out) if args.out else ROOT / "bench" / "results" / f"cni-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    print(f"written to {out}")
    if not args.no_readme:
        update_readme(Path(args.readme), render_figures(results, out.name))
        print(f"{args.readme}: figures regenerated")
    return 0


#: What the figures are held to (issues #15 and #16): mode, ratio key, the ratio it must not exceed.
TARGETS = (("daemon", "sequential_add", 0.15), ("daemon", "sequential_del", 0.10),
           ("daemon", "concurrent_add", 0.2), ("standalone", "sequential_add", 3.0))
RSS_LIMIT_KIB = 80 * 1024  # daemon VmHWM after --rss-pods pods
SHIM_LIMIT_MS = 2.0  # the shim's own cost: exec + round trip of a request the daemon rejects
BEGIN, END = "<!-- bench_cni.py figures: begin (generated, do not edit) -->", "<!-- bench_cni.py figures: end -->"


def render_figures(results: dict[str, Any], source: str) -> str:
    """The README's figures section (markdown) for one run's JSON."""
    machine = results.get("machine", {})
    load = ", ".join(f"{x:.1f}" for x in machine.get("load", []))
    lines = [f"From `{source}`: chain {' + '.join(results.get('chain', []))}, {machine.get('cpus', '?')} CPUs, "
             f"load average {load or '?'} at the start. Medians (p90 in the JSON); ratios against the "
             "reference median of the same run.", "",
             "| mode | seq ADD | seq DEL | conc ADD | conc DEL | ratio seq ADD / DEL | API reads / writes per ADD |",
             "|---|---|---|---|---|---|---|"]
    ratios = results.get("ratios_vs_reference", {})
    for mode, entry in results.get("modes", {}).items():
        cells = [f"{entry[label][verb]['median_ms']:.1f} ms" if label in entry else "–"
                 for label in ("sequential", "concurrent") for verb in ("add", "del")]
        r = ratios.get(mode)
        ratio = f"{r['sequential_add']:.2f} / {r['sequential_del']:.2f}" if r else "1 / 1"
        api = entry.get("api_per_add")
        calls = f"{api['reads']} / {api['writes']}" if api and mode != "reference" else "–"
        lines.append(f"| {mode} | {' | '.join(cells)} | {ratio} | {calls} |")
    lines.append("")
    for mode, key, limit in TARGETS:
        value = ratios.get(mode, {}).get(key)
        if value is not None:
            lines.append(f"- {mode} {key.replace('_', ' ').upper()} ≤ {limit}x reference: {value:.2f}x — "
                         f"{'met' if value <= limit else 'NOT met'}")
    daemon = results.get("modes", {}).get("daemon", {})
    for label, side in daemon.get("daemon_side", {}).items():
        if side:
            lines.append(f"- daemon side of the {label} calls: " + ", ".join(
                f"{verb.upper()} {v['median_ms']:.1f} ms" for verb, v in side.items() if v))
    if "rss_after_pods" in daemon:
        rss = dict(daemon["rss_after_pods"])
        hwm = rss.get("VmHWM")
        verdict = f" (< {RSS_LIMIT_KIB // 1024} MiB: {'met' if hwm < RSS_LIMIT_KIB else 'NOT met'})" if hwm else ""
        lines.append(f"- daemon after {rss.pop('pods')} pods: "
                     + ", ".join(f"{k} {v} KiB" for k, v in rss.items()) + verdict)
    if "shim_roundtrip" in daemon:
        shim = daemon["shim_roundtrip"].get("shim_to_daemon", {}).get("median_ms")
        verdict = f" (≤ {SHIM_LIMIT_MS:g} ms: {'met' if shim <= SHIM_LIMIT_MS else 'NOT met'})" if shim else ""
        lines.append(f"- shim round trip to the daemon: {_brief(daemon['shim_roundtrip'])}{verdict}")
    if "floor" in results:
        lines.append("- floor (one warm process, netlink work only): " + ", ".join(
            f"{verb.upper()} {v['median_ms']:.1f} ms" for verb, v in results["floor"].items()))
    return "\n".join(lines) + "\n"


def _brief(value: Any) -> str:
    """A summary dict as ``median X ms, p90 Y ms``; anything else as JSON."""
    if isinstance(value, dict) and "median_ms" in value:
        return f"median {value['median_ms']:.2f} ms, p90 {value.get('p90_ms', 0):.2f} ms"
    if isinstance(value, dict):
        return "; ".join(f"{k}: {_brief(v)}" for k, v in value.items())
    return json.dumps(value)


def update_readme(path: Path, figures: str) -> None:
    """Replace what lies between :data:`BEGIN` and :data:`END` in ``path`` with ``figures``."""
    text = path.read_text()
    head, sep, rest = text.partition(BEGIN)
    _, sep2, tail = rest.partition(END)
    if not sep or not sep2:
        raise SystemExit(f"{path}: figures markers not found ({BEGIN!r} ... {END!r})")
    path.write_text(f"{head}{BEGIN}\n{figures}{END}{tail}")


if __name__ == "__main__":
    sys.exit(main())
