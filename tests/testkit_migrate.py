"""Rewrite imports from the pre-#17 test-support locations to the new ones (issue #17, items 3-4).

    python tests/testkit_migrate.py FILE...      # rewrites in place, prints each file it changed
    python tests/testkit_migrate.py --check FILE...   # exit 1 if any file would change

``metacni.testing`` left the package: the fake API server and the traffic probes the demo needs
are in ``metacni.sim``; everything else (namespace sandbox, firewall testbed, daemon process
helpers, the libcni oracle, hypothesis strategies, the node fixture) is the ``metacni_testkit``
pytest plugin in ``tests/testkit``. The flat ``tests/test_*.py`` files moved into folders that
mirror the code (``TEST_MOVES``; the same table is in /work/brief/testkit-moves.txt). The rewrite
is textual on dotted module names, so it also fixes ``python -m metacni.testing.fakeapi`` in
strings; ``from metacni.testing import a, b`` is split when its names now live apart. The node classes became one
(``metacni_testkit.nodes.Node``), so a few calls are renamed too (:data:`CALL_RENAMES`).
"""

from __future__ import annotations

import fnmatch
import functools
import re
import sys
from pathlib import Path

# old test file (relative to the repository) -> new path
TEST_MOVES: dict[str, str] = {
    "tests/test_bad_input.py": "tests/cli/test_bad_input.py",
    "tests/test_cli.py": "tests/cli/test_cli.py",
    "tests/test_exec_reference.py": "tests/cli/test_exec_reference.py",
    "tests/test_plugin_scaffold.py": "tests/cli/test_plugin_scaffold.py",
    "tests/test_confwatch.py": "tests/daemon/test_confwatch.py",
    "tests/test_daemon_crash.py": "tests/daemon/test_daemon_crash.py",
    "tests/test_daemon_functional.py": "tests/daemon/test_daemon_functional.py",
    "tests/test_daemon_meta.py": "tests/daemon/test_daemon_meta.py",
    "tests/test_daemon_reaper.py": "tests/daemon/test_daemon_reaper.py",
    "tests/test_daemon_routes.py": "tests/daemon/test_daemon_routes.py",
    "tests/test_daemon_server.py": "tests/daemon/test_daemon_server.py",
    "tests/test_plugin_daemon.py": "tests/daemon/test_plugin_daemon.py",
    "tests/test_plugin_api.py": "tests/engine/test_plugin_api.py",
    "tests/test_fakeapi.py": "tests/sim/test_fakeapi.py",
    "tests/test_shim.py": "tests/shim/test_shim.py",
    "tests/test_lazylog.py": "tests/spec/test_lazylog.py",
    "tests/test_record.py": "tests/spec/test_record.py",
    "tests/test_results.py": "tests/spec/test_results.py",
    "tests/test_results_vs_go.py": "tests/spec/test_results_vs_go.py",
    "tests/test_spec_parsers.py": "tests/spec/test_spec_parsers.py",
    "tests/test_plugin_tutorial.py": "tests/docs/test_plugin_tutorial.py",
}

# old dotted module -> new dotted module (prefix match on whole name components)
MODULES: dict[str, str] = {
    "metacni.testing.fakeapi": "metacni.sim.fakeapi",
    "metacni.testing.traffic": "metacni.sim.traffic",
    "metacni.testing.netns": "metacni_testkit.netns",
    "metacni.testing.daemon": "metacni_testkit.daemon",
    "metacni.testing.firewall_testbed": "metacni_testkit.firewall_testbed",
    "metacni.testing.strategies": "metacni_testkit.strategies",
    "metacni.testing.golibcni": "metacni_testkit.golibcni",
    "metacni.testing.podresources": "metacni_testkit.podresources",
    "metacni_plugins.bridge.testkit": "metacni.sim.traffic",
    "plugins.bridge.testkit": "metacni.sim.traffic",
    "tests.daemon_support": "metacni_testkit.nodes",
    "tests.meta.conftest": "metacni_testkit.nodes",
    **{old[:-3].replace("/", "."): new[:-3].replace("/", ".") for old, new in TEST_MOVES.items()},
}

# ``from metacni.testing import NAME``: the package that holds NAME now
PACKAGE_MEMBERS: dict[str, str] = {
    "fakeapi": "metacni.sim", "traffic": "metacni.sim",
    "netns": "metacni_testkit", "daemon": "metacni_testkit", "firewall_testbed": "metacni_testkit",
    "strategies": "metacni_testkit", "golibcni": "metacni_testkit", "podresources": "metacni_testkit",
}

# New homes of modules that other branches add under metacni/testing/ (not in this tree yet): when
# merging, git's rename detection puts them under metacni/sim/; move them on with
# ``git mv metacni/sim/X.py tests/testkit/metacni_testkit/X.py`` (test support, not the demo's).
PENDING: set[str] = {"metacni_testkit.podresources"}

# names whose home changed along with their module (old module, name) -> new name
RENAMED: dict[tuple[str, str], str] = {
    ("tests.meta.conftest", "MetaNode"): "Node",
}

# The node classes became one (metacni_testkit.nodes.Node); calls that changed name, by where the
# calling file lives or what it imported: (path glob or old module, pattern, replacement)
CALL_RENAMES: list[tuple[str, str, str]] = [
    ("plugins/bridge/tests/*", r"\b(node|ref_node)\.run\(", r"\1.invoke("),  # run a plugin in the node
    ("plugins/bridge/tests/*", r"\bnode\.pod\(\)(?!\.path)", "node.pod().path"),  # pods are Pod objects
    ("tests/meta/*", r"\bnode\.run\(", "node.sh("),  # a command inside the node
    ("tests.daemon_support", r"(\bNode\((?:[^()]|\([^()]*\))*?)\bwork=", r"\1root="),  # the node's directory
    ("tests.daemon_support", r"\.work / \"conf\"", ".conf_dir"),
    ("tests.daemon_support", r"\.work\b", ".root"),
]

_NAME = r"(?<![\w.]){old}(?![\w])"
_FROM_PACKAGE = re.compile(r"^(?P<indent>[ \t]*)from metacni\.testing import (?P<names>\([^)]*\)|[^\n#]+)(?P<tail>.*)$",
                           re.MULTILINE)
_BARE_DAEMON_SUPPORT = re.compile(r"^(?P<indent>[ \t]*)(?P<kw>from|import) daemon_support\b", re.MULTILINE)


def _split_from_package(match: re.Match[str]) -> str:
    indent, tail = match["indent"], match["tail"]
    names = [n.strip() for n in match["names"].strip("()").replace("\n", " ").split(",") if n.strip()]
    by_home: dict[str, list[str]] = {}
    for entry in names:
        base = entry.split(" as ")[0].strip()
        home = PACKAGE_MEMBERS.get(base)
        if home is None:
            return match.group(0)  # unknown name: leave the line for a human
        by_home.setdefault(home, []).append(entry)
    lines = [f"{indent}from {home} import {', '.join(entries)}" for home, entries in by_home.items()]
    lines[-1] += tail
    return "\n".join(lines)


def _rename_imported(text: str) -> str:
    for (module, old_name), new_name in RENAMED.items():
        pattern = re.compile(rf"^(?P<head>[ \t]*from {re.escape(MODULES[module])} import )(?P<names>[^\n]+)$",
                             re.MULTILINE)
        text = pattern.sub(functools.partial(_rename_in_line, re.compile(rf"\b{old_name}\b(?! as)"),
                                             f"{new_name} as {old_name}"), text)
    return text


def _rename_in_line(word: re.Pattern[str], replacement: str, match: re.Match[str]) -> str:
    return match["head"] + word.sub(replacement, match["names"])


def rewrite(text: str, path: str = "") -> str:
    """``text`` with every old test-support module name replaced by its new one; ``path`` (relative
    to the repository) selects the call renames of :data:`CALL_RENAMES`."""
    for where, pattern, replacement in CALL_RENAMES:
        applies = (fnmatch.fnmatch(path, where) if "/" in where
                   else re.search(_NAME.format(old=re.escape(where)), text) is not None)
        if applies:
            text = re.sub(pattern, replacement, text)
    text = _FROM_PACKAGE.sub(_split_from_package, text)
    renamed_sources = [m for (m, _) in RENAMED if re.search(_NAME.format(old=re.escape(m)), text)]
    for old in sorted(MODULES, key=len, reverse=True):
        text = re.sub(_NAME.format(old=re.escape(old)), MODULES[old], text)
    text = _BARE_DAEMON_SUPPORT.sub(
        lambda m: m["indent"] + ("from metacni_testkit.nodes" if m["kw"] == "from"
                                 else "import metacni_testkit.nodes as daemon_support"), text)
    if renamed_sources:
        text = _rename_imported(text)
    return text


def _repo_relative(path: Path) -> str:
    """``path`` relative to the repository holding it (the nearest parent with a pyproject.toml
    and a ``metacni`` folder), else as given."""
    resolved = path.resolve()
    for parent in resolved.parents:
        if (parent / "pyproject.toml").is_file() and (parent / "metacni").is_dir():
            return resolved.relative_to(parent).as_posix()
    return path.as_posix()


def main(argv: list[str]) -> int:
    check = "--check" in argv
    changed = 0
    for name in (a for a in argv if a != "--check"):
        path = Path(name)
        old = path.read_text()
        new = rewrite(old, _repo_relative(path))
        if new != old:
            changed += 1
            print(path)
            if not check:
                path.write_text(new)
    return 1 if check and changed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
