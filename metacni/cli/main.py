"""The ``metacni`` command line. argparse keeps start-up cheap; each command imports what it uses."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from metacni import __version__

from .plugin_cmd import register as _add_plugin_tools

Handler = Callable[[argparse.Namespace], int]


def _add_exec(sub: argparse._SubParsersAction) -> None:
    from .exec_cmd import add_arguments, run

    p = sub.add_parser("exec", help="run a network (conflist) for one attachment, like cnitool",
                       description="Run ADD/DEL/CHECK/GC/STATUS of a network for a netns, as a runtime would.")
    add_arguments(p)
    p.set_defaults(handler=run)


def _add_validate(sub: argparse._SubParsersAction) -> None:
    from .validate_cmd import add_arguments, run

    p = sub.add_parser("validate", help="check a .conf/.conflist file and name each problem by JSON path")
    add_arguments(p)
    p.set_defaults(handler=run)


def _add_plugins(sub: argparse._SubParsersAction) -> None:
    from .plugins_cmd import add_arguments, run

    p = sub.add_parser("plugins", help="list in-process plugins (in-tree and third-party)")
    add_arguments(p)
    p.set_defaults(handler=run)


def _add_daemon(sub: argparse._SubParsersAction) -> None:
    from .daemon_cmd import add_arguments, run

    p = sub.add_parser("daemon", help="run the warm node daemon the binDir shim forwards CNI calls to")
    add_arguments(p)
    p.set_defaults(handler=run)


def _add_install(sub: argparse._SubParsersAction) -> None:
    from .install_cmd import add_arguments, run

    p = sub.add_parser("install", help="write 00-metacni.conf for the node's primary network and install metacni")
    add_arguments(p)
    p.set_defaults(handler=run)


def _version(args: argparse.Namespace) -> int:
    from metacni.spec.versions import ALL_VERSIONS

    print(f"metacni {__version__}")
    print(f"CNI spec versions: {', '.join(ALL_VERSIONS)}")
    return 0


COMMANDS: list[Callable[[argparse._SubParsersAction], None]] = [_add_exec, _add_validate, _add_plugins]
COMMANDS.append(_add_install)
COMMANDS.append(_add_daemon)


def _add_demo(sub: argparse._SubParsersAction) -> None:
    from .demo_cmd import add_arguments, run

    p = sub.add_parser("demo", help="simulate a three-node cluster in namespaces, attach pods, show who can talk",
                       description="Build a simulated cluster (network namespaces only), attach pods with and "
                                   "without extra networks, print the topology and a connectivity matrix, write "
                                   "an SVG picture, and tear everything down (unless --keep).")
    add_arguments(p)
    p.set_defaults(handler=run)


COMMANDS.append(_add_demo)
COMMANDS.append(_add_plugin_tools)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="metacni",
        description="metacni: a meta-CNI for Kubernetes nodes. Run with CNI_COMMAND set to act as a CNI plugin.",
    )
    parser.add_argument("--log-level", default=None, help="DEBUG, INFO, WARNING (default), ERROR")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for register in COMMANDS:
        register(sub)
    p = sub.add_parser("version", help="print the metacni version and the CNI versions it speaks")
    p.set_defaults(handler=_version)
    return parser


def main(argv: list[str]) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Handler | None = getattr(args, "handler", None)
    if handler is None:
        parser.print_help(sys.stderr)
        return 2
    import logging

    logging.basicConfig(stream=sys.stderr, level=getattr(logging, (args.log_level or "WARNING").upper(), 30),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return handler(args)
