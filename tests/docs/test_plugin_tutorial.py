"""docs/plugins.md, followed literally: its files and commands become one shell script.

The tutorial's ```` ```<lang> file=PATH ```` blocks are written where the reader would write
them, and every ``$ `` line of its ``console`` blocks is run, in order, in one bash session
(so ``cd`` and ``. .venv/bin/activate`` carry over) -- in a fresh virtual environment, with
the chain running inside a test-owned node namespace. The only change is the pod
namespace's name (``demo-pod``), made unique so parallel runs cannot collide. The output
lines the doc shows for ``metacni plugins`` and ``ip link`` are compared with the real ones.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import pytest

import metacni
import metacni.engine.hookspecs as hookspecs
import metacni.plugin as plugin_api
from metacni_testkit.netns import Sandbox, tag

DOC = Path(__file__).resolve().parents[2] / "docs" / "plugins.md"
FENCE = re.compile(r"^```(\w+)([^\n]*)\n(.*?)^```$", re.S | re.M)
POD = "demo-pod"


@dataclass
class Step:
    """One file to write, or one command with the output lines the doc shows for it."""

    file: str | None = None
    text: str = ""
    command: str | None = None
    shown: list[str] = field(default_factory=list)


def tutorial_steps() -> list[Step]:
    text = DOC.read_text()
    tutorial = text[text.index("## Tutorial"):text.index("## Reference")]
    steps: list[Step] = []
    for lang, info, body in FENCE.findall(tutorial):
        name = re.search(r"\bfile=(\S+)", info)
        if name:
            steps.append(Step(file=name.group(1), text=body))
        elif lang == "console":
            for line in body.splitlines():
                if line.startswith("$ "):
                    steps.append(Step(command=line[2:]))
                elif steps and steps[-1].command is not None:
                    steps[-1].shown.append(line)
    return steps


def script(steps: list[Step], pod: str) -> str:
    lines = ["set -eo pipefail"]
    for i, step in enumerate(steps):
        if step.file is not None:
            assert "METACNI_EOF" not in step.text
            lines += [f'mkdir -p "$(dirname {step.file})"', f"cat > {step.file} <<'METACNI_EOF'",
                      step.text.rstrip("\n"), "METACNI_EOF"]
        else:
            assert step.command is not None
            lines += [f"echo '@@step {i}'", step.command.replace(POD, pod)]
    return "\n".join(lines) + "\n"


def outputs(stdout: str) -> dict[int, str]:
    parts = re.split(r"^@@step (\d+)\n", stdout, flags=re.M)
    return {int(parts[i]): parts[i + 1] for i in range(1, len(parts), 2)}


def test_doc_has_a_complete_tutorial():
    steps = tutorial_steps()
    files = {s.file for s in steps if s.file}
    assert {"pyproject.toml", "demo.conflist"} <= files and any(f and f.endswith("plugin.py") for f in files)
    commands = [s.command or "" for s in steps]
    assert any("pip install -e ." in c for c in commands)
    assert any("metacni plugins" in c for c in commands)
    assert any("metacni exec add" in c for c in commands) and any("metacni exec del" in c for c in commands)


def test_reference_covers_every_hook_and_helper():
    doc = DOC.read_text()
    reference = doc[doc.index("## Reference"):]
    hooks = [n for n in dir(hookspecs) if n.startswith("cni_")]
    assert hooks and all(f"`{h}(" in reference for h in hooks), hooks
    missing = [n for n in plugin_api.__all__ if n not in reference and n not in ("ADD", "DEL", "CHECK", "GC",
                                                                               "STATUS", "ALL_VERSIONS")]
    assert not missing, f"metacni.plugin names not in the reference: {missing}"


def test_following_the_tutorial_gives_a_listed_plugin_that_runs_in_a_chain(box: Sandbox, tmp_path):
    node = box.netns("mctut-node")
    pod = tag("mctut-pod-", 10)
    box.namespaces.append(pod)  # removed at teardown if the doc's own cleanup did not run
    steps = tutorial_steps()
    work = tmp_path / "empty"
    work.mkdir()
    (tmp_path / "tutorial.sh").write_text(script(steps, pod))
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PYTEST_", "CNI_", "PYTHONPATH", "VIRTUAL_ENV"))}
    env["PYTHONPATH"] = str(Path(metacni.__file__).resolve().parents[1])  # the metacni under test
    proc = subprocess.run(["ip", "netns", "exec", node, "bash", str(tmp_path / "tutorial.sh")], cwd=work,
                          env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, f"tutorial failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    out = outputs(proc.stdout)

    def output_of(fragment: str) -> tuple[Step, str]:
        i, step = next((i, s) for i, s in enumerate(steps) if s.command and fragment in s.command)
        return step, out[i]

    step, listing = output_of("metacni plugins")
    (shown,) = [line for line in step.shown if line.startswith("pod-alias ")]
    assert shown in listing.splitlines(), listing

    _, added = output_of("metacni exec add")
    result = json.loads(added)
    assert result["cniVersion"] == "1.0.0"
    assert any(i["name"] == "eth0" and i.get("sandbox", "").endswith("/" + pod) for i in result["interfaces"])

    step, link = output_of("link show eth0")
    (alias,) = [line.strip() for line in step.shown if line.strip().startswith("alias ")]
    assert alias in [line.strip() for line in link.splitlines()], link

    # The doc's cleanup ran: the pod namespace is gone and the package lives in the venv only.
    assert not os.path.exists(f"/run/netns/{pod}") or not os.path.getsize(f"/run/netns/{pod}")
    assert (work / "metacni-pod-alias" / ".venv").is_dir()
    from metacni.engine.registry import Registry

    assert "pod-alias" not in Registry().types()


@pytest.mark.parametrize("verb", ["add", "check", "del"])
def test_every_exec_in_the_tutorial_keeps_state_in_the_folder(verb):
    """A reader running the tutorial must not write to /var/lib/cni on their machine."""
    commands = [s.command for s in tutorial_steps() if s.command and f"metacni exec {verb}" in s.command]
    assert commands and all("--cache-dir cni-cache" in c for c in commands)
