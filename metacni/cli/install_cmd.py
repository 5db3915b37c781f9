"""``metacni install``: put the shim into binDir and write 00-metacni.conf for the node's primary network.

In the DaemonSet (conf/daemonset.yaml) host paths are mounted at identical paths, so the
defaults are the node's paths and nothing is translated. By default the shim is the package's
static binary (``metacni.shimbin``; the image passes its build stage's binary as ``--source``),
copied by temp file + fsync + rename (no "text file busy")."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from metacni.spec.errors import CNIError


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--conf-dir", default="/etc/cni/net.d", help="where the runtime reads CNI configs")
    p.add_argument("--host-conf-dir", default=None,
                   help="the conf dir as the runtime sees it, when this runs in a container (e.g. /etc/cni/net.d "
                        "while --conf-dir is /host/etc/cni/net.d)")
    p.add_argument("--primary", default=None, help="primary network file (default: first other config in --conf-dir)")
    p.add_argument("--cni-version", default=None, help="default: the primary's cniVersion")
    p.add_argument("--kubeconfig", default="", help="kubeconfig path as the runtime's host sees it")
    p.add_argument("--write-kubeconfig", default=None, metavar="PATH",
                   help="write a kubeconfig from this pod's service account to PATH as this process sees it "
                        "(e.g. /host/etc/cni/net.d/metacni.d/metacni.kubeconfig; --kubeconfig names it as the "
                        "host does); the standalone fallback authenticates with it")
    p.add_argument("--service-account-dir", default=None,
                   help="with --write-kubeconfig: where token and ca.crt are (default: the in-cluster mount)")
    p.add_argument("--cni-dir", default="/var/lib/cni/metacni")
    p.add_argument("--bin-dir", default="/opt/cni/bin", help="binDir written into the config")
    p.add_argument("--install-bin-dir", default=None,
                   help="where to install the executable (default: --bin-dir); with --no-binary nothing is copied")
    p.add_argument("--source", default=None,
                   help="executable to install instead of the shim (e.g. the `metacni` console script on a dev host)")
    p.add_argument("--no-binary", action="store_true", help="only write the config")
    p.add_argument("--shim", action="store_true",
                   help="install the shim that forwards to the node daemon (the default; kept for old manifests)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=JSON",
                   help="extra config key, e.g. --set namespaceIsolation=true --set 'defaultNetworks=[\"a\"]'")


def _extra(items: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise SystemExit(f"--set {item!r}: expected KEY=VALUE")
        try:
            out[key] = json.loads(value)
        except ValueError:
            out[key] = value
    return out


def run(args: argparse.Namespace) -> int:
    from metacni.meta.install import install_binary, kubeconfig_path, write_kubeconfig, write_node_config

    try:
        if args.write_kubeconfig:  # before the config that names it
            sa = {"sa_dir": args.service_account_dir} if args.service_account_dir else {}
            changed = write_kubeconfig(args.write_kubeconfig, **sa)
            print(f"{'wrote' if changed else 'unchanged'} {kubeconfig_path(args.write_kubeconfig)}")
        bin_dir = args.install_bin_dir or args.bin_dir
        if args.no_binary:
            pass
        elif args.source:
            print(f"installed {install_binary(args.source, bin_dir)}")
        else:
            from metacni.daemon.install import install_shim

            print(f"installed {install_shim(bin_dir)}")
        path = write_node_config(args.conf_dir, primary=args.primary, cni_version=args.cni_version,
                                 host_conf_dir=args.host_conf_dir, kubeconfig=args.kubeconfig,
                                 cni_dir=args.cni_dir, bin_dir=args.bin_dir, extra=_extra(args.set))
    except (CNIError, OSError) as exc:  # OSError: shimbin.ShimMissing, an unwritable dir
        print(f"metacni install: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {path}")
    return 0
