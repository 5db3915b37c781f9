"""The ``metacni`` command line. argparse keeps start-up cheap; each command imports what it uses."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable

from metacni import __version__

from .plugin_cmd import register as _add_plugin_tools

Handler = Callable[[argparse.Namespace], int]


# name -> (module in metacni.cli with add_arguments/run, help, description). Modules are imported
# only when the parser is built, never on the CNI path.
SUBCOMMANDS: dict[str, tuple[str, str, str | None]] = {
    "exec": ("exec_cmd", "run a network (conflist) for one attachment, like cnitool",
             "Run ADD/DEL/CHECK/GC/STATUS of a network for a netns, as a runtime would."),
    "validate": ("validate_cmd", "check a .conf/.conflist file and name each problem by JSON path", None),
    "plugins": ("plugins_cmd", "list in-process plugins (in-tree and third-party)", None),
    "install": ("install_cmd", "write 00-metacni.conf for the node's primary network and install metacni", None),
    "uninstall": ("uninstall_cmd", "remove 00-metacni.conf and the shim: the node falls back to its primary CNI",
                  None),
    "daemon": ("daemon_cmd", "run the warm node daemon the binDir shim forwards CNI calls to", None),
    "demo": ("demo_cmd", "simulate a three-node cluster in namespaces, attach pods, show who can talk",
             "Build a simulated cluster (network namespaces only), attach pods with and without extra networks, "
             "print the topology and a connectivity matrix, write an SVG picture, and tear everything down "
             "(unless --keep)."),
}


def _add_subcommands(sub: argparse._SubParsersAction) -> None:
    for name, (module_name, help_text, description) in SUBCOMMANDS.items():
        module = importlib.import_module(f"{__package__}.{module_name}")
        p = sub.add_parser(name, help=help_text, description=description)
        module.add_arguments(p)
        p.set_defaults(handler=module.run)


def _version(args: argparse.Namespace) -> int:
    from metacni.spec.versions import ALL_VERSIONS

    print(f"metacni {__version__}")
    print(f"CNI spec versions: {', '.join(ALL_VERSIONS)}")
    return 0


COMMANDS: list[Callable[[argparse._SubParsersAction], None]] = [_add_subcommands, _add_plugin_tools]


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
