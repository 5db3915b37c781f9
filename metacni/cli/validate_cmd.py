"""``metacni validate``: every problem of a config file, each with its JSON path and a reason."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

from metacni.meta import multus_keys
from metacni.spec.config import Problem, schema_problems
from metacni.spec.versions import negotiate

if TYPE_CHECKING:
    from metacni.engine.registry import Registry


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
    if not isinstance(data, dict):
        return problems
    plugins = data.get("plugins") if as_list else [data]
    if not isinstance(plugins, list):
        return problems
    typed = [(i, p) for i, p in enumerate(plugins) if isinstance(p, dict) and isinstance(p.get("type"), str)
             and p["type"] and "/" not in p["type"]]
    more = plugin_problems(typed, cni_path, _version(data, as_list), "$.plugins" if as_list else None)
    seen = {problem.path for problem in problems}
    return problems + [problem for problem in more if problem.path not in seen]


def _version(data: dict, as_list: bool) -> str:
    """The version the plugins will be called with; "" when the schema already refused it."""
    from metacni.spec.errors import CNIError

    version = data.get("cniVersion")
    try:
        return negotiate(version if isinstance(version, str) else None,
                         data.get("cniVersions") if as_list else None)
    except (CNIError, TypeError, ValueError):
        return ""


def plugin_problems(plugins: list[tuple[int, dict]], cni_path: str | None, version: str,
                    base: str | None) -> list[Problem]:
    """Every plugin found (in-process for this cniVersion, or as a binary in ``cni_path``; no
    lookup when it is None), and
    every problem of each plugin object -- and of its ``ipam`` section -- that the plugin's
    config model (``cni_config_model``) finds."""
    from metacni.engine.execplugin import find_plugin
    from metacni.engine.registry import Registry
    from metacni.spec.errors import CNIError

    registry = Registry()
    problems: list[Problem] = []
    for index, plugin in plugins:
        root = f"{base}[{index}]" if base else "$"
        plugin_type = plugin["type"]
        if registry.has(plugin_type):
            info = registry.info(plugin_type)
            if version and version not in info.versions:
                problems.append(Problem(f"{root}.type", f"in-process plugin {plugin_type!r} does not "
                                                        f"support cniVersion {version}"))
            problems += model_problems_of(registry, plugin_type, plugin, root)
        elif cni_path is not None:
            try:
                find_plugin(plugin_type, cni_path.split(os.pathsep))
            except CNIError as exc:
                problems.append(Problem(f"{root}.type", exc.details))
        ipam = plugin.get("ipam")
        ipam_type = ipam.get("type") if isinstance(ipam, dict) else None
        if isinstance(ipam_type, str) and ipam_type != plugin_type and registry.has(ipam_type):
            problems += model_problems_of(registry, ipam_type, plugin, root)
        problems += delegate_problems(plugin, cni_path, version, root)
    return problems


def delegate_problems(plugin: dict, cni_path: str | None, version: str, root: str) -> list[Problem]:
    """The meta plugin's ``delegates``: each one a plugin object or a conflist, checked alike."""
    delegates = plugin.get("delegates") if plugin.get("type") == "metacni" else None
    problems: list[Problem] = []
    for index, delegate in enumerate(delegates if isinstance(delegates, list) else []):
        if not isinstance(delegate, dict):
            continue
        nested = delegate.get("plugins")
        where = f"{root}.delegates[{index}]"
        items = list(enumerate(nested)) if isinstance(nested, list) else [(None, delegate)]
        for sub, item in items:
            if isinstance(item, dict) and isinstance(item.get("type"), str) and item["type"] != "metacni":
                problems += _rooted(item, cni_path, version, where if sub is None else f"{where}.plugins[{sub}]")
    return problems


def _rooted(item: dict, cni_path: str | None, version: str, where: str) -> list[Problem]:
    """:func:`plugin_problems` of one object whose JSON path is ``where`` instead of ``$``."""
    return [Problem(where + p.path[1:], p.reason) for p in plugin_problems([(0, item)], cni_path, version, None)]


def model_problems_of(registry: Registry, plugin_type: str, plugin: dict, root: str) -> list[Problem]:
    """What ``plugin_type``'s config model says about ``plugin``; a plugin without a model (or
    whose hook fails) adds nothing but a problem naming the failure."""
    from pydantic import BaseModel

    from metacni.spec.models import model_problems

    try:
        hook = getattr(registry.get(plugin_type), "cni_config_model", None)
        model = hook() if callable(hook) else None
    except Exception as exc:  # a third-party hook: report it, keep validating the rest
        return [Problem(f"{root}.type", f"plugin {plugin_type!r}: cni_config_model failed: {exc}")]
    if model is None:
        return []
    if not (isinstance(model, type) and issubclass(model, BaseModel)):
        return [Problem(f"{root}.type", f"plugin {plugin_type!r}: cni_config_model returned "
                                        f"{model!r}, not a pydantic model class")]
    return [Problem(path, reason) for path, reason in model_problems(model, plugin, root)]


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
