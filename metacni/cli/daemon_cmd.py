"""``metacni daemon``: the warm node daemon (also the DaemonSet container's command)."""

from __future__ import annotations

import argparse
import os
import signal
import threading


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", default=os.environ.get("METACNI_DAEMON_CONFIG"),
                   help="JSON file of daemon settings (flags override it)")
    p.add_argument("--socket", default=None, help="unix socket path (default /run/metacni/metacni.sock)")
    p.add_argument("--node-name", default=os.environ.get("NODE_NAME") or os.environ.get("METACNI_NODE_NAME"))
    p.add_argument("--kubeconfig", default=None)
    p.add_argument("--no-api", dest="use_api", action="store_false", default=None, help="no Kubernetes caches")
    p.add_argument("--conf-dir", default=None)
    p.add_argument("--cni-path", default=None)
    p.add_argument("--cache-dir", default=None)
    p.add_argument("--metrics-port", type=int, default=None, help="HTTP port for /metrics, /healthz, /readyz")
    p.add_argument("--metrics-host", default=None)
    p.add_argument("--concurrency", type=int, default=None, help="CNI requests served in parallel")
    p.add_argument("--no-routes", dest="routes", action="store_false", default=None,
                   help="do not route to other nodes' pod CIDRs (the primary CNI does)")
    p.add_argument("--route-protocol", type=int, default=None)
    p.add_argument("--reconcile-period", type=float, default=None)
    p.add_argument("--gc-period", type=float, default=None, help="seconds between periodic GCs (0: never)")
    p.add_argument("--gc-grace", type=float, default=None, help="periodic GC spares cache entries this young")
    p.add_argument("--readiness-indicator-file", default=None)
    p.add_argument("--ready-timeout", type=float, default=None, help="seconds an ADD waits for readiness")
    p.add_argument("--no-regenerate-config", dest="regenerate_config", action="store_false", default=None)
    p.add_argument("--node-kubeconfig", default=None, metavar="PATH",
                   help="keep PATH (as the daemon sees it) a kubeconfig of this pod's service account, rewritten "
                        "when the token rotates: the credentials of the standalone fallback")
    p.add_argument("--pending-dir", default=None,
                   help="DELs the shim recorded while the daemon was down (default /var/lib/cni/metacni/pending-del)")
    p.add_argument("--read-timeout", type=float, default=None,
                   help="seconds a client has to send its whole request (socket and metrics port)")
    p.add_argument("--write-timeout", type=float, default=None, help="seconds to write an answer")
    p.add_argument("--log-file", default=None)


def limit_malloc_arenas(n: int = 2) -> None:
    """glibc gives each thread that allocates its own malloc arena (up to 8 per core), and a
    daemon serving requests on many short threads grows RSS by tens of MiB that way. Two
    arenas keep it flat; CNI work is short and not allocation bound."""
    import ctypes
    import ctypes.util

    m_arena_max = -8
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.mallopt(m_arena_max, n)
    except (OSError, AttributeError):
        pass


def run(args: argparse.Namespace) -> int:
    from metacni.daemon import logs
    from metacni.daemon.app import Daemon
    from metacni.daemon.config import DaemonConfig

    cfg = DaemonConfig.load(
        args.config, socket=args.socket, node_name=args.node_name, kubeconfig=args.kubeconfig,
        use_api=args.use_api, conf_dir=args.conf_dir, cni_path=args.cni_path, cache_dir=args.cache_dir,
        metrics_port=args.metrics_port, metrics_host=args.metrics_host, concurrency=args.concurrency,
        routes=args.routes, route_protocol=args.route_protocol, reconcile_period=args.reconcile_period,
        gc_period=args.gc_period, gc_grace=args.gc_grace, readiness_indicator_file=args.readiness_indicator_file,
        ready_timeout=args.ready_timeout, pending_dir=args.pending_dir, read_timeout=args.read_timeout,
        write_timeout=args.write_timeout,
        regenerate_config=args.regenerate_config, node_kubeconfig=args.node_kubeconfig, log_file=args.log_file,
        log_level=args.log_level)
    logs.setup(cfg.log_level, cfg.log_file)
    if os.environ.get("METACNI_MALLOC_ARENAS", "2") != "0":
        limit_malloc_arenas(int(os.environ.get("METACNI_MALLOC_ARENAS", "2")))
    daemon = Daemon(cfg)
    done = threading.Event()

    def on_signal(signum: int, frame: object) -> None:
        done.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    daemon.start()
    # A timed wait, not done.wait(): the kernel may hand SIGTERM to another thread, and then
    # nothing interrupts the main thread's untimed lock wait, so the Python-level handler
    # would never run (the daemon ignored a SIGTERM once in ~700 test runs).
    while not done.wait(0.5):
        pass
    daemon.stop()
    return 0
