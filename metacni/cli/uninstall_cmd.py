"""``metacni uninstall``: remove 00-metacni.conf and the shim, so the node falls back to its primary CNI.

Run it once the daemon is gone (a running daemon regenerates 00-metacni.conf within a second);
docs/operations.md has the DaemonSet that does so on every node (conf/uninstall.yaml). Only
files that are metacni's are removed: a config that does not run ``metacni`` and a ``metacni``
executable without the shim's marker stay."""

from __future__ import annotations

import argparse
import sys


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--conf-dir", default="/etc/cni/net.d", help="where the runtime reads CNI configs")
    p.add_argument("--bin-dir", default="/opt/cni/bin", help="where the shim was installed")


def run(args: argparse.Namespace) -> int:
    from metacni.daemon.install import remove_shim
    from metacni.meta.install import remove_node_config

    removed = remove_node_config(args.conf_dir) + remove_shim(args.bin_dir)
    for path in removed:
        print(f"removed {path}")
    if not removed:
        print("metacni uninstall: nothing of metacni's found", file=sys.stderr)
    return 0
