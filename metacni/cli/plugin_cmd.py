"""``metacni plugin new NAME``: write a plugin package that installs, lists and passes its test.

The skeleton is a chained plugin that validates one config key and passes prevResult on,
with the hooks stubbed where real work goes; its test runs the engine in-process without
root, so ``pip install -e . && pytest`` passes before the author changes anything.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from pathlib import Path
from string import Template

#: A CNI type, an entry-point name and (with - -> _) a Python identifier, all at once.
NAME_RE = re.compile(r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("plugin", help="tools for plugin authors")
    verbs = p.add_subparsers(dest="plugin_command", metavar="VERB", required=True)
    new = verbs.add_parser("new", help="write a working plugin package skeleton with a passing test",
                           description="Create DIR/metacni-NAME: a pip-installable package whose entry point "
                                       "registers plugin type NAME with metacni.")
    new.add_argument("name", help="the plugin type conflists will use, e.g. pod-alias")
    new.add_argument("--dir", default=".", help="where to create the package folder (default: .)")
    new.set_defaults(handler=run_new)


def names(name: str) -> dict[str, str]:
    module = "metacni_" + name.replace("-", "_")
    return {"type": name, "module": module, "dist": "metacni-" + name}


def problem_with(name: str) -> str | None:
    """Why ``name`` cannot be a new plugin type, or None."""
    if not NAME_RE.fullmatch(name):
        return "use lower-case letters, digits and single hyphens, starting with a letter (e.g. pod-alias)"
    if len(name) > 60:
        return "keep it under 60 characters"
    from metacni.engine.registry import Registry

    if name in Registry().types():
        return f"plugin type {name!r} is already installed (see `metacni plugins`); a second one would clash"
    return None


def run_new(args: argparse.Namespace) -> int:
    name: str = args.name
    problem = problem_with(name)
    if problem:
        print(f"metacni plugin new: invalid name {name!r}: {problem}", file=sys.stderr)
        return 2
    n = names(name)
    root = Path(args.dir) / n["dist"]
    if root.exists():
        print(f"metacni plugin new: {root} already exists; not overwriting", file=sys.stderr)
        return 1
    for directory in os.environ.get("CNI_PATH", "/opt/cni/bin").split(os.pathsep):
        if directory and Path(directory, name).exists():
            print(f"warning: {directory}/{name} exists; as an in-process type, {name!r} will shadow that "
                  "binary in every conflist metacni runs", file=sys.stderr)
    for rel, template in TEMPLATES.items():
        path = root / Template(rel).substitute(n)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(Template(template).substitute(n))
    print(f"created {root}")
    print(f"next: cd {root} && pip install -e . && python -m pytest")
    return 0


_PYPROJECT = """\
[build-system]
requires = ["setuptools>=68"]
build-backend = "setuptools.build_meta"

[project]
name = "$dist"
version = "0.1.0"
description = "A metacni in-process CNI plugin of type $type"
requires-python = ">=3.11"
dependencies = ["metacni", "pydantic>=2"]

# The entry-point name is the `type` conflists use.
[project.entry-points."metacni.plugins"]
$type = "$module.plugin"

[tool.setuptools]
packages = ["$module"]

[tool.pytest.ini_options]
testpaths = ["tests"]
"""

_README = """\
# $dist

A metacni plugin of type `$type`. Chain it after an interface plugin:

```json
{"cniVersion": "1.0.0", "name": "demo", "plugins": [
  {"type": "bridge", "bridge": "cni0", "ipam": {"type": "host-local", "subnet": "10.22.0.0/24"}},
  {"type": "$type", "greeting": "hello"}
]}
```

    pip install -e .          # in the environment metacni runs from
    python -m metacni plugins # lists $type
    python -m pytest          # runs tests/

The hooks are documented in `metacni.engine.hookspecs`; the tutorial is metacni's docs/plugins.md.
"""

_INIT = '''\
"""$dist: the metacni plugin of type $type."""
'''

_PLUGIN = '''\
"""Hooks of the $type plugin. Runs in-process in metacni: never print (stdout is the CNI protocol)."""

from __future__ import annotations

import logging

from metacni.plugin import PluginConfig, PluginInfo, Request, Result, hookimpl, result_from_prev, validate_config

log = logging.getLogger(__name__)


class Config(PluginConfig):
    """The keys this plugin reads from its config object (unknown keys are allowed).

    ``metacni validate`` lists every problem of it with its JSON path; in the hooks,
    :func:`validate_config` turns the first one into CNI error 7.
    """

    greeting: str = "hello"


@hookimpl
def cni_plugin_info() -> PluginInfo:
    # Declare the runtimeConfig capabilities you read (e.g. {"mac"}) and, if need be, the versions.
    return PluginInfo(description="$type plugin")


@hookimpl
def cni_config_model() -> type[Config]:
    return Config


def _config(request: Request) -> Config:
    return validate_config(Config, request.config, request.network_name, "$type config")


@hookimpl
def cni_add(request: Request) -> Result:
    greeting = _config(request).greeting  # validate everything before changing anything
    log.info("%s %s for %s", greeting, request.ifname, request.container_id)
    # Real work goes here, e.g.:
    #     with in_pod_netns(request) as ipr:
    #         link = get_link(ipr, request.ifname)
    return result_from_prev(request)


@hookimpl
def cni_del(request: Request) -> None:
    # Undo what ADD did. Must succeed when called twice or when the netns is gone.
    return None


@hookimpl
def cni_check(request: Request) -> None:
    _config(request)
'''

_TEST = '''\
"""Runs without root: the engine calls the installed plugin in-process, as metacni would."""

from __future__ import annotations

import pytest

from metacni.engine.invoke import Invoker
from metacni.engine.registry import Registry
from metacni.plugin import CNIError, Code, Invocation, Result

TYPE = "$type"


def prev(version: str) -> Result:
    return Result.model_validate({"cniVersion": version, "interfaces": [{"name": "eth0", "sandbox": "/x"}],
                                  "ips": [{"address": "10.22.0.2/24", "interface": 0}]})


def call(command: str, conf: dict, prev_result: Result | None = None) -> Result | None:
    inv = Invocation(command=command, container_id="c1", netns="/x", ifname="eth0")
    return Invoker(Registry()).invoke(TYPE, {"name": "net", "type": TYPE, **conf}, inv, prev_result)


def test_installed_and_listed():
    assert TYPE in Registry().types(), "pip install -e . first"


@pytest.mark.parametrize("version", ["0.4.0", "1.0.0"])
def test_add_passes_prev_result_on_in_the_config_version(version):
    out = call("ADD", {"cniVersion": version, "greeting": "hi"}, prev(version))
    assert out is not None and out.to_wire() == prev(version).to_wire()


def test_bad_config_is_error_7_naming_the_field():
    with pytest.raises(CNIError) as err:
        call("ADD", {"cniVersion": "1.0.0", "greeting": 1}, prev("1.0.0"))
    assert err.value.code == Code.INVALID_CONFIG and "$$.greeting" in err.value.details


def test_del_is_idempotent():
    call("DEL", {"cniVersion": "1.0.0"})
    call("DEL", {"cniVersion": "1.0.0"})
'''

TEMPLATES: dict[str, str] = {
    "pyproject.toml": _PYPROJECT,
    "README.md": _README,
    "$module/__init__.py": _INIT,
    "$module/plugin.py": _PLUGIN,
    "tests/test_plugin.py": _TEST,
}
