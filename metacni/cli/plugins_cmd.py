"""``metacni plugins``: what runs in-process, from which package, speaking which versions."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="machine-readable output")


def run(args: argparse.Namespace) -> int:
    from metacni.engine.registry import Registry
    from metacni.spec.errors import CNIError

    registry = Registry()
    rows = []
    for plugin_type in registry.types():
        sources = registry.sources().get(plugin_type) or []
        row: dict[str, Any] = {"type": plugin_type,
               "package": ", ".join(f"{s.distribution} {s.version}" for s in sources) or "registered",
               "module": ", ".join(s.module for s in sources)}
        try:
            info = registry.info(plugin_type)
            row["versions"] = list(info.versions)
            row["capabilities"] = sorted(info.capabilities)
        except CNIError as exc:
            row["error"] = f"{exc.msg}: {exc.details}"
        rows.append(row)
    if args.json:
        print(json.dumps({"plugins": rows, "clashes": registry.clashes}, indent=2))
    else:
        for row in rows:
            caps = ",".join(row.get("capabilities", [])) or "-"
            status = row.get("error") or f"versions {row['versions'][0]}..{row['versions'][-1]} capabilities {caps}"
            print(f"{row['type']:<14} {row['package']:<22} {status}")
        for clash in registry.clashes:
            print(f"CLASH: {clash}", file=sys.stderr)
    return 1 if registry.clashes else 0
