"""Dependencies point one way: spec < netlink < engine, kernel, firewall < plugins, meta < daemon, cli.

Read from the source with ``ast`` so the rule holds for lazy (function-level) imports too.
The binDir shim is C (shim/metacni-shim.c): tests/shim/test_shim.py checks it.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# layer -> layers it may import (besides itself and third-party/stdlib modules)
ALLOWED: dict[str, set[str]] = {
    "metacni.spec": set(),
    "metacni.netlink": {"metacni.spec"},
    "metacni.engine": {"metacni.spec"},
    "metacni.kernel": {"metacni.spec", "metacni.netlink"},
    "metacni.firewall": {"metacni.spec", "metacni.netlink", "metacni.kernel"},
    "metacni.plugin": {"metacni.spec", "metacni.netlink", "metacni.engine", "metacni.kernel", "metacni.firewall"},
    "metacni_plugins": {"metacni.spec", "metacni.netlink", "metacni.engine", "metacni.kernel", "metacni.firewall",
                        "metacni.plugin"},
    "metacni.meta": {"metacni.spec", "metacni.netlink", "metacni.engine", "metacni.kernel", "metacni.firewall",
                     "metacni.plugin"},
    "metacni.daemon": {"metacni.spec", "metacni.netlink", "metacni.engine", "metacni.kernel", "metacni.firewall",
                       "metacni.plugin", "metacni.meta"},
    # the demo's simulated cluster and fake API server: beside the cli, above the daemon
    "metacni.sim": {"metacni.spec", "metacni.netlink", "metacni.engine", "metacni.kernel", "metacni.firewall",
                    "metacni.plugin", "metacni.meta", "metacni.daemon"},
}
# top-level names of the test tree; nothing that ships may import them
TEST_TREE = {"tests", "conftest", "metacni_testkit", "e2e", "bench"}
LAYERS = sorted(ALLOWED, key=len, reverse=True)


def layer_of(module: str) -> str | None:
    return next((layer for layer in LAYERS if module == layer or module.startswith(layer + ".")), None)


def module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    if parts[0] == "plugins":
        parts[0] = "metacni_plugins"
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def imports(path: Path, module: str) -> list[str]:
    tree = ast.parse(path.read_text(), str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                found.append(".".join(base + ([node.module] if node.module else [])))
            elif node.module:
                found.append(node.module)
    return found


def sources() -> list[Path]:
    """Every module that ships: all of metacni/ and plugins/ except the plugins' test folders."""
    files = [p for p in (ROOT / "metacni").rglob("*.py")] + [p for p in (ROOT / "plugins").rglob("*.py")]
    return [p for p in files if "tests" not in p.relative_to(ROOT).parts]


@pytest.mark.parametrize("path", sources(), ids=lambda p: str(p.relative_to(ROOT)))
def test_imports_point_down(path: Path) -> None:
    module = module_name(path)
    own = layer_of(module)
    if own is None:
        return  # cli, __main__, shim: top of the stack
    for target in imports(path, module):
        target_layer = layer_of(target)
        if target_layer is None or target_layer == own:
            continue
        assert target_layer in ALLOWED[own], f"{module} ({own}) imports {target} ({target_layer})"


@pytest.mark.parametrize("path", sources(), ids=lambda p: str(p.relative_to(ROOT)))
def test_nothing_that_ships_imports_the_test_tree(path: Path) -> None:
    for target in imports(path, module_name(path)):
        assert target.split(".")[0] not in TEST_TREE, f"{module_name(path)} imports {target} from the test tree"


def test_every_shipped_module_is_checked() -> None:
    """No exemption: every package under metacni/ is in a layer, or is the top of the stack."""
    top = {"metacni", "metacni.__main__", "metacni.shimbin", "metacni._shim"}  # and metacni.cli.*
    modules = {module_name(p) for p in (ROOT / "metacni").rglob("*.py")}
    unlayered = {m for m in modules if layer_of(m) is None and m not in top and not m.startswith("metacni.cli")}
    assert unlayered == set()
    assert not (ROOT / "metacni" / "testing").exists()

