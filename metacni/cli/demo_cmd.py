"""``metacni demo``: build a simulated three-node cluster, attach pods, prove they can talk.

Everything lives in network namespaces named ``mcdemo<tag>-*``; the host's own namespace is
never changed. Torn down on exit (Ctrl-C and SIGTERM included) unless ``--keep``; ``metacni
demo --down`` removes kept demos.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from pathlib import Path
from types import FrameType
from typing import Any

STATE_DIR = "/run/metacni-demo"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--nodes", type=int, default=3, help="number of simulated nodes (default 3)")
    p.add_argument("--backend", choices=("nftables", "iptables"), default="nftables",
                   help="firewall backend of portmap/masq/forward (default nftables)")
    p.add_argument("--svg", default="metacni-demo.svg", help="where to write the topology picture")
    p.add_argument("--dynamic", action="store_true",
                   help="also add a network to a running pod by editing its annotation, then remove it")
    p.add_argument("--step", action="store_true",
                   help="pause after announcing each stage of the build until Enter is pressed (to walk an "
                        "audience through it); end of input runs the rest through")
    p.add_argument("--keep", action="store_true", help="leave the cluster running (remove with --down)")
    p.add_argument("--down", action="store_true", help="remove every kept demo and exit")
    p.add_argument("--state-dir", default=STATE_DIR, help=argparse.SUPPRESS)


class _Progress:
    """Stage lines on stderr; with ``pause`` (``--step``), each stage waits for a line on stdin
    before it starts. Ctrl-C while it waits interrupts the build like anywhere else."""

    def __init__(self, pause: bool = False) -> None:
        self.t0 = time.monotonic()
        self.step = 0
        self.tty = sys.stderr.isatty()
        self.pause = pause

    def __call__(self, msg: str) -> None:
        self.step += 1
        self._end_tick()
        hint = "  (Enter: go on)" if self.pause else ""
        sys.stderr.write(f"[{time.monotonic() - self.t0:5.1f}s] {msg}{hint}\n")
        sys.stderr.flush()
        if self.pause and not sys.stdin.readline():
            self.pause = False  # end of input: run the rest through

    def ticker(self, label: str, total: int) -> _Ticker:
        return _Ticker(self, label, total)

    def _end_tick(self) -> None:
        if self.tty:
            sys.stderr.write("\r\033[K")


class _Ticker:
    def __init__(self, progress: _Progress, label: str, total: int) -> None:
        self.p, self.label, self.total, self.done = progress, label, total, 0

    def __call__(self) -> None:
        self.done += 1
        if self.p.tty:
            sys.stderr.write(f"\r\033[K[{time.monotonic() - self.p.t0:5.1f}s] {self.label} {self.done}/{self.total}")
        elif self.done % 10 == 0 or self.done == self.total:
            sys.stderr.write(f"[{time.monotonic() - self.p.t0:5.1f}s] {self.label} {self.done}/{self.total}\n")
        sys.stderr.flush()


def _down(state_dir: Path) -> int:
    from metacni.sim import host

    states = host.read_states(state_dir)
    if not states:
        print("no kept metacni demo to remove")
        return 0
    for state in states:
        removed = host.teardown(state)
        print(f"removed demo {state['tag']}: {len(removed)} objects ({', '.join(removed)})")
    return 0


def _on_signal(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)


def _dynamic_step(cluster: Any, pods: list[Any], progress: _Progress) -> list[str]:
    """``--dynamic``: hot-plug the second network into a pod that lacks it (issue #19)."""
    from metacni.sim import dynamic

    pod = next((p for p in pods if not p.annotations and not p.host_port), None)
    peer = next((p for p in pods if p.annotations), None)
    if pod is None or peer is None:
        return ["--dynamic needs a pod without and a pod with the second network"]
    progress(f"dynamic attachment: editing {pod.name}'s networks annotation")
    step = dynamic.hotplug(cluster, pod, peer)
    print("\n" + "\n".join(step.lines))
    return step.failures


def run(args: argparse.Namespace) -> int:
    if os.geteuid() != 0:
        print("metacni demo: needs root (it creates network namespaces)", file=sys.stderr)
        return 2
    state_dir = Path(args.state_dir)
    if args.down:
        return _down(state_dir)
    from metacni.sim import Cluster, ClusterPlan, picture, report
    from metacni.sim.traffic import EchoHub

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGHUP, _on_signal)
    progress = _Progress(pause=args.step)
    plan = ClusterPlan.make(prefix="mcdemo", state_dir=state_dir, nodes=args.nodes, backend=args.backend)
    cluster = Cluster(plan, progress)
    hub = EchoHub()
    status = 1
    try:
        cluster.up()
        specs = [s for s in report.DEMO_PODS if int(str(s["node"]).split("-")[1]) <= args.nodes]
        progress(f"attaching {len(specs)} pods through the shim (CNI ADD with K8S_POD_* args)")
        pods = cluster.add_pods([dict(s) for s in specs])
        for pod in pods:
            hub.listen(pod.path, report.ECHO_PORT)
        hub.listen(f"/run/netns/{plan.internet}", report.ECHO_PORT)
        progress("measuring connectivity with real traffic")
        on_net1 = len([p for p in pods if p.annotations])
        total = len(pods) * (len(pods) + len(plan.nodes)) + on_net1 * (on_net1 - 1)
        matrix = report.measure(cluster, pods, progress.ticker("probes", total))
        progress._end_tick()
        print(report.render_topology(cluster, pods))
        print()
        print(report.render_matrix(matrix))
        net1 = {p.name: ip for p in pods if (ip := report.net1_ip(cluster, p))}
        svg = Path(args.svg).resolve()
        svg.write_text(picture.render(cluster, pods, net1))
        print(f"\nTopology picture: {svg}")
        failures = list(matrix.failures)
        if args.dynamic:
            failures += _dynamic_step(cluster, pods, progress)
        if failures:
            print("\nFAILED checks:\n  " + "\n  ".join(failures))
        status = 0 if not failures else 1
    except KeyboardInterrupt as exc:
        print(f"\ninterrupted ({exc or 'SIGINT'}); tearing down", file=sys.stderr)
        status = 130
        args.keep = False
    finally:
        hub.close()
        if args.keep and status == 0:
            print(f"\nKept running (namespaces {plan.tag}-*). Remove with: metacni demo --down")
        else:
            signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not stop the cleanup
            progress.pause = False  # the teardown never waits
            progress("tearing down")
            cluster.down()
            signal.signal(signal.SIGINT, signal.default_int_handler)
            progress("done: host left as it was found")
    return status
