"""``metacni validate``: every problem of a config file, each with its JSON path and a reason."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from metacni.meta import multus_keys
from metacni.spec.config import Problem, schema_problems
from metacni.spec.versions import negotiate


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("file", help=".conf, .conflist or .json file")
    p.add_argument("--cni-path", default=os.environ.get("CNI_PATH", "/opt/cni/bin"),
                   help="also check that each plugin type exists in-process or as a binary here")
    p.add_argument("--no-plugin-check", action="store_true", help="skip the plugin lookup")


def problems_of(path: Path, cni_path: str | None) -> list[Problem]:
    try:
        data = json.loads(path.read_bytes())
    except OSError as exc:
        return [Problem("$", f"cannot read file: {exc.strerror}")]
    except ValueError as exc:
        return [Problem("$", f"not valid JSON: {exc}")]
    as_list = path.suffix == ".conflist" or (isinstance(data, dict) and "plugins" in data)
    problems = schema_problems(data, as_list=as_list)
    if problems or cni_path is None:
        return problems
    plugins = data["plugins"] if as_list else [data]
    return plugin_problems(plugins, cni_path, negotiate(data.get("cniVersion"), data.get("cniVersions")),
                           "$.plugins" if as_list else None)


def plugin_problems(plugins: list[dict], cni_path: str, version: str, base: str | None) -> list[Problem]:
    from metacni.engine.execplugin import find_plugin
    from metacni.engine.registry import Registry
    from metacni.spec.errors import CNIError

    registry = Registry()
    problems: list[Problem] = []
    for index, plugin in enumerate(plugins):
        where = f"{base}[{index}].type" if base else "$.type"
        plugin_type = plugin["type"]
        if registry.has(plugin_type):
            info = registry.info(plugin_type)
            if version and version not in info.versions:
                problems.append(Problem(where, f"in-process plugin {plugin_type!r} does not support "
                                               f"cniVersion {version}"))
            continue
        try:
            find_plugin(plugin_type, cni_path.split(os.pathsep))
        except CNIError as exc:
            problems.append(Problem(where, exc.details))
    return problems


def run(args: argparse.Namespace) -> int:
    path = Path(args.file)
    problems = problems_of(path, None if args.no_plugin_check else args.cni_path)
    for warning in multus_keys.file_warnings(path):  # Multus keys metacni ignores: never silent
        print(f"{path}: warning: {warning}")
    if not problems:
        print(f"{path}: valid")
        return 0
    for problem in problems:
        print(f"{path}: {problem}")
    return 1
