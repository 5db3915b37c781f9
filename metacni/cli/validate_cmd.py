"""``metacni validate``: every problem of a config file, each with its JSON path and a reason."""

from __future__ import annotations

import argparse
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from metacni.meta import multus_keys
from metacni.spec.config import Problem, extension, loads_siblings, schema_problems, sibling_conf_paths, sibling_plugin
from metacni.spec.errors import CNIError, Code
from metacni.spec.versions import negotiate

if TYPE_CHECKING:
    from metacni.engine.registry import Registry


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("file", help=".conf, .conflist or .json file")
    p.add_argument("--cni-path", default=os.environ.get("CNI_PATH", "/opt/cni/bin"),
                   help="also check that each plugin type exists in-process or as a binary here")
    p.add_argument("--no-plugin-check", action="store_true", help="skip the plugin lookup")


def problems_of(path: Path, cni_path: str | None) -> list[Problem]:
    """Every problem of the file, loaded as the ADD path loads it: a ``.conflist`` also gets the
    plugin objects of ``<its dir>/<name>/*.conf`` (libcni 1.3, unless ``loadOnlyInlinedPlugins``;
    :func:`metacni.spec.config.conflist_from_file_bytes`), whose problems are located as
    ``<name>/<file>:$...``."""
    try:
        data = json.loads(path.read_bytes())
    except OSError as exc:
        return [Problem("$", f"cannot read file: {exc.strerror}")]
    except ValueError as exc:
        return [Problem("$", f"not valid JSON: {exc}")]
    is_conflist = extension(str(path)) == ".conflist"  # as the ADD path decides (libcni's rule)
    as_list = is_conflist or (isinstance(data, dict) and "plugins" in data)
    siblings = Siblings.load(path, data) if is_conflist else Siblings()
    merged = siblings.merged(data)
    problems = siblings.problems + siblings.relocate(schema_problems(merged, as_list=as_list))
    if not isinstance(data, dict):
        return problems
    plugins = merged.get("plugins") if as_list else [data]
    if not isinstance(plugins, list):
        return problems
    typed = [(i, p) for i, p in enumerate(plugins) if isinstance(p, dict) and isinstance(p.get("type"), str)
             and p["type"] and "/" not in p["type"]]
    more = siblings.relocate(plugin_problems(typed, cni_path, _version(data, as_list),
                                             "$.plugins" if as_list else None))
    seen = {problem.path for problem in problems}
    return problems + [problem for problem in more if problem.path not in seen]


@dataclass
class Siblings:
    """A conflist file's sibling plugin files, as the ADD path would append them."""

    labels: list[str] = field(default_factory=list)  # "<name>/<file>" of each appended plugin
    plugins: list[dict[str, Any]] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    inline: int = 0  # how many plugins the file itself holds
    plugins_reason: str | None = None  # why "$.plugins" is missing as the ADD path says it ("": said)

    @classmethod
    def load(cls, path: Path, data: Any) -> Siblings:
        out = cls()
        if not isinstance(data, dict) or not isinstance(data.get("name"), str):
            return out
        inline = data.get("plugins")
        out.inline = len(inline) if isinstance(inline, list) else 0
        if not loads_siblings(data):
            if "plugins" not in data:
                out.plugins_reason = "loadOnlyInlinedPlugins is true, and there is no 'plugins' key"
            return out
        name, directory = data["name"], str(path.parent)
        try:
            files = sibling_conf_paths(directory, name)
        except CNIError as exc:
            out.problems.append(Problem("$.name", f"{exc.msg}: {exc.details}"))
            return out
        for file in files:
            label = f"{name}/{os.path.basename(file)}"
            try:
                out.plugins.append(sibling_plugin(file))
                out.labels.append(label)
            except CNIError as exc:
                where = f"{label}:$.type" if exc.code == Code.INVALID_CONFIG else f"{label}:$"
                out.problems.append(Problem(where, f"{exc.msg}: {exc.details.removeprefix(file + ': ')}"))
        # With no plugin anywhere the ADD path says so; a file that could not be loaded has
        # said it already.
        if "plugins" not in data:
            out.plugins_reason = "" if files else \
                f"no plugin configs found: no 'plugins' and no plugin config in {os.path.join(directory, name)}"
        return out

    def merged(self, data: Any) -> Any:
        """``data`` with the sibling plugins appended, as the ADD path runs it."""
        if not self.plugins or not isinstance(data, dict):
            return data
        inline = data.get("plugins", [])
        return {**data, "plugins": [*inline, *self.plugins]} if isinstance(inline, list) else data

    def relocate(self, problems: list[Problem]) -> list[Problem]:
        """Problems of an appended plugin (``$.plugins[k]...``) located in its own file."""
        out = []
        for problem in problems:
            match = _PLUGIN_INDEX.match(problem.path)
            index = int(match.group(1)) - self.inline if match else -1
            if match and 0 <= index < len(self.labels):
                problem = Problem(f"{self.labels[index]}:${problem.path[match.end():]}", problem.reason)
            elif problem.path == "$.plugins" and self.plugins_reason is not None:
                if not self.plugins_reason:
                    continue
                problem = Problem("$.plugins", self.plugins_reason)
            out.append(problem)
        return out


_PLUGIN_INDEX = re.compile(r"\$\.plugins\[(\d+)\]")


def _version(data: dict, as_list: bool) -> str:
    """The version the plugins will be called with; "" when the schema already refused it."""
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
