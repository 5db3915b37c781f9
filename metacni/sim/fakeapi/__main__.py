"""``python -m metacni.sim.fakeapi --port N --kubeconfig PATH``: serve until SIGTERM/SIGINT.

Prints one ``listening on URL`` line once the kubeconfig is written, so scripts can wait for it.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from types import FrameType

from .server import DEFAULT_TOKEN, FakeAPIServer


def _parse_node(spec: str) -> tuple[str, str | None, str | None]:
    name, cidr, ip = (spec.split(",") + ["", ""])[:3]
    return name, cidr or None, ip or None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m metacni.sim.fakeapi", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--kubeconfig", help="where to write a kubeconfig for this server")
    parser.add_argument("--token", default=DEFAULT_TOKEN)
    parser.add_argument("--require-auth", action="store_true", help="answer 401 without the token")
    parser.add_argument("--node", action="append", default=[], metavar="NAME[,PODCIDR[,INTERNALIP]]",
                        help="seed a node (repeatable)")
    parser.add_argument("--bookmark-interval", type=float, default=5.0)
    args = parser.parse_args(argv)

    server = FakeAPIServer(args.host, args.port, token=args.token, require_auth=args.require_auth,
                           bookmark_interval=args.bookmark_interval)
    for spec in args.node:
        server.add_node(*_parse_node(spec))
    server.start()
    if args.kubeconfig:
        server.write_kubeconfig(args.kubeconfig)
    done = threading.Event()

    def _on_signal(signum: int, frame: FrameType | None) -> None:
        done.set()

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    print(f"listening on {server.url}", flush=True)
    done.wait()
    server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
