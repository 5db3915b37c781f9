"""The ``kubernetes`` client is imported only when the API is used, and only its public API is."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import metacni

# Runs the installed ``metacni`` console script in this process and, at exit (after its
# sys.exit), writes which ``kubernetes`` modules were imported to the file named in argv[1].
_PROBE = """
import atexit, json, runpy, sys
report, script = sys.argv[1], sys.argv[2]

def dump():
    with open(report, "w") as f:
        json.dump(sorted(m for m in sys.modules if m.split(".")[0] == "kubernetes"), f)

atexit.register(dump)
sys.argv = [script]
runpy.run_path(script, run_name="__main__")
"""


def test_add_with_annotations_in_runtime_config_imports_no_client(node, tmp_path):
    """An ADD whose pod annotations arrive in runtimeConfig, on a node without API credentials,
    attaches the pod without importing any of the ``kubernetes`` package."""
    script = shutil.which("metacni")
    assert script, "the metacni console script is not installed"
    conf = node.meta_conf()
    conf.pop("kubeconfig", None)  # annotations come from the runtime; nothing to read or write
    conf["runtimeConfig"] = {"io.kubernetes.cri.pod-annotations": {"example.com/owner": "team-a"}}
    pod = node.pod(in_api=False)
    report = tmp_path / "modules.json"
    env = dict(os.environ, CNI_COMMAND="ADD", CNI_CONTAINERID=pod.container_id, CNI_NETNS=pod.path,
               CNI_IFNAME="eth0", CNI_ARGS=pod.cni_args, CNI_PATH="/usr/lib/cni")
    env.pop("KUBERNETES_SERVICE_HOST", None)
    try:
        proc = run_in(node, [sys.executable, "-c", _PROBE, str(report), script], env, json.dumps(conf))
        assert proc.returncode == 0, proc.stdout + proc.stderr
        result = json.loads(proc.stdout)
        assert result["interfaces"] and result["ips"], result
        assert node.pod_links(pod) == {"lo", "eth0"}
        assert json.loads(report.read_text()) == []
    finally:
        proc = run_in(node, [script], dict(env, CNI_COMMAND="DEL"), json.dumps(conf))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    node.assert_clean(pod)


def run_in(node, argv: list[str], env: dict[str, str], stdin: str) -> subprocess.CompletedProcess[str]:  # type: ignore[no-untyped-def]
    return subprocess.run(["ip", "netns", "exec", node.name, *argv], input=stdin, capture_output=True, text=True,
                          env=env, timeout=120)


def test_only_the_public_client_api_is_used():
    """No reaching into the client's internals (``ApiClient.param_serialize``/``call_api``,
    ``kubernetes.watch.watch.iter_resp_lines``): the dynamic client and ``Watch`` only."""
    root = Path(metacni.__file__).parent
    internals = re.compile(r"param_serialize|iter_resp_lines|call_api")
    hits = [f"{path.relative_to(root)}:{n}: {line.strip()}"
            for path in sorted(root.rglob("*.py"))
            for n, line in enumerate(path.read_text().splitlines(), 1) if internals.search(line)]
    assert hits == []
    assert not (root / "meta" / "kubehttp.py").exists()
