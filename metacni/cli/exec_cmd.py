"""``metacni exec``: the cnitool equivalent, on metacni's engine."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from typing import Any

from metacni.spec.digest import sha512_hex
from metacni.spec.errors import CNIError, Code

VERBS = ("add", "del", "check", "gc", "status")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("verb", choices=VERBS)
    p.add_argument("network", help="a .conf/.conflist path, or a network name found in --conf-dir")
    p.add_argument("netns", nargs="?", default="", help="netns path (not needed for gc/status)")
    p.add_argument("--container-id", default=None, help="default: derived from the netns path, as cnitool does")
    p.add_argument("--ifname", default="eth0")
    p.add_argument("--runtime-config", default=None, metavar="JSON", help="capability arguments, e.g. "
                   '\'{"portMappings":[{"hostPort":8080,"containerPort":80,"protocol":"tcp"}]}\'')
    p.add_argument("--args", default=os.environ.get("CNI_ARGS", ""), metavar="K=V;...", help="CNI_ARGS")
    p.add_argument("--conf-dir", default=os.environ.get("NETCONFPATH", "/etc/cni/net.d"))
    p.add_argument("--cni-path", default=os.environ.get("CNI_PATH", "/opt/cni/bin"))
    p.add_argument("--cache-dir", default="/var/lib/cni")
    p.add_argument("--valid", action="append", default=[], metavar="CONTAINERID/IFNAME",
                   help="gc: an attachment that is still valid (repeatable)")
    p.add_argument("--exec-type", action="append", default=[], metavar="TYPE",
                   help="run this plugin type as a binary from --cni-path even if metacni has it in-process")
    p.add_argument("--exec-all", action="store_true", help="run every plugin as a binary (reference mode)")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds a delegate binary may run")


def default_container_id(netns: str) -> str:
    return "metacni-" + sha512_hex(netns)[:20]


def run(args: argparse.Namespace) -> int:
    try:
        with contextlib.redirect_stdout(sys.stderr):  # stdout is for the JSON below, not plugins' prints
            out = execute(args)
    except CNIError as exc:
        print(exc.to_json(), flush=True)
        return 1
    if out is not None:
        print(json.dumps(out, indent=2), flush=True)
    return 0


def execute(args: argparse.Namespace) -> dict[str, Any] | None:
    from metacni.engine.cache import ResultCache
    from metacni.engine.chain import ChainRunner, RuntimeConf
    from metacni.engine.invoke import Invoker
    from metacni.engine.registry import Registry
    from metacni.spec.args import CniArgs
    from metacni.spec.config import load_network

    verb = args.verb.upper()
    if verb in ("ADD", "DEL", "CHECK") and not args.netns:
        raise CNIError(Code.INVALID_ENVIRONMENT, "netns path required", f"{args.verb} needs a NETNS_PATH argument")
    capability_args: dict[str, Any] = {}
    if args.runtime_config:
        try:
            capability_args = json.loads(args.runtime_config)
        except ValueError as exc:
            raise CNIError(Code.DECODE_FAILURE, "invalid --runtime-config", str(exc)) from None
        if not isinstance(capability_args, dict):
            raise CNIError(Code.DECODE_FAILURE, "invalid --runtime-config", "must be a JSON object")
    net = load_network(args.network, args.conf_dir)
    registry = Registry()
    if args.exec_all:
        registry.disabled = frozenset(registry.types())
    elif args.exec_type:
        registry.disabled = frozenset(args.exec_type)
    runner = ChainRunner(Invoker(registry, timeout=args.timeout),
                         [p for p in args.cni_path.split(os.pathsep) if p], ResultCache(args.cache_dir))
    container_id = args.container_id or default_container_id(args.netns)
    rt = RuntimeConf(container_id=container_id, netns=args.netns, ifname=args.ifname,
                     args=CniArgs.parse(args.args), capability_args=capability_args)
    if verb == "ADD":
        return runner.add(net, rt).to_wire()
    if verb == "DEL":
        runner.delete(net, rt)
    elif verb == "CHECK":
        runner.check(net, rt)
    elif verb == "GC":
        valid = [tuple(v.split("/", 1)) for v in args.valid]
        runner.gc(net, [(v[0], v[1] if len(v) > 1 else "") for v in valid])
    elif verb == "STATUS":
        runner.status(net)
    return None

