"""docs/operations.md's ```sh recipe``` blocks work as written on a healthy pod (issue #18).

The blocks are taken from the doc, the placeholders filled in and the node paths of the recipe
(``/etc/cni/net.d``, ``/var/lib/cni/metacni``, ``/opt/cni/bin``, ``/var/run/netns``) moved to
the test's node, then every command runs in the node's network namespace. A broken pod makes
the CHECK recipes fail (so they can tell).
"""

from __future__ import annotations

import os
import re
import sys
import textwrap
from pathlib import Path

import pytest

from metacni_testkit.netns import run
from metacni_testkit.nodes import CNI_PATH, PRIMARY

DOC = Path(__file__).resolve().parents[2] / "docs" / "operations.md"


def recipe_blocks(text: str) -> list[str]:
    """The bodies of the fenced blocks opened with ```sh recipe (list-indented or not)."""
    pattern = re.compile(r"^([ \t]*)```sh recipe\n(.*?)^\1```", re.M | re.S)
    return [textwrap.dedent(m.group(2)) for m in pattern.finditer(text)]


def commands(block: str) -> list[str]:
    """One string per command: continuation lines joined, comments and blank lines dropped."""
    out: list[str] = []
    for line in block.replace("\\\n", " ").splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            out.append(line)
    return out


def test_the_doc_has_recipes_and_they_name_the_meta_cache_dir():
    blocks = recipe_blocks(DOC.read_text())
    assert blocks, "no ```sh recipe block in docs/operations.md"
    cmds = [c for b in blocks for c in commands(b)]
    assert all("--cache-dir /var/lib/cni " not in c + " " for c in cmds)  # the runtime's dir: wrong for meta


@pytest.fixture
def healthy_pod(node):
    node.start_api()
    node.write_primary()
    node.add_nad("net-a", "br-a", "10.89.1.0/24")
    pod = node.pod(annotations={"k8s.v1.cni.cncf.io/networks": "net-a"})
    node.cni("ADD", pod)
    yield pod
    node.cni("DEL", pod)


def _localize(cmd: str, node, pod) -> str:
    for old, new in (("/var/run/netns/<netns>", pod.path), ("/var/lib/cni/metacni", str(node.cni_dir)),
                     ("/etc/cni/net.d", str(node.conf_dir)), ("/opt/cni/bin", CNI_PATH),
                     ("<containerID>", pod.container_id), ("<namespace>", pod.namespace),
                     ("<pod>", pod.name), ("<network>", PRIMARY)):
        cmd = cmd.replace(old, new)
    assert "<" not in cmd.replace("< ", ""), f"unfilled placeholder in {cmd!r}"
    return cmd


def _run_recipes(node, pod) -> list[tuple[str, int, str, str]]:
    env = dict(os.environ, PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""))
    out = []
    for block in recipe_blocks(DOC.read_text()):
        for cmd in commands(block):
            local = _localize(cmd, node, pod)
            proc = node.sh("bash", "-c", local, env=env)
            out.append((cmd, proc.returncode, proc.stdout, proc.stderr))
    return out


def test_every_recipe_works_on_a_healthy_pod(node, healthy_pod):
    ran = _run_recipes(node, healthy_pod)
    assert len(ran) >= 5
    for cmd, code, stdout, stderr in ran:
        assert code == 0, f"{cmd!r} failed ({code}): {stdout} {stderr}"
    by_start = {cmd.split()[0] + (" " + cmd.split()[1] if cmd.startswith("metacni") else ""): out
                for cmd, _, out, _ in ran}
    assert "net-a" in by_start["cat"] and PRIMARY in by_start["cat"]
    meta_check = next(out for cmd, _, out, _ in ran if cmd.startswith("CNI_COMMAND=CHECK"))
    assert meta_check.strip() == ""  # CHECK prints nothing on success
    assert "valid" in by_start["metacni validate"]
    assert "bridge" in by_start["metacni plugins"]


def test_the_check_recipes_fail_on_a_broken_pod(node, healthy_pod):
    run("ip", "addr", "flush", "dev", "eth0", netns=healthy_pod.netns)
    ran = _run_recipes(node, healthy_pod)
    checks = [(cmd, code, out) for cmd, code, out, _ in ran if "CHECK" in cmd or "exec check" in cmd]
    assert len(checks) == 2
    for cmd, code, out in checks:
        assert code != 0 and "eth0" in out, (cmd, code, out)
