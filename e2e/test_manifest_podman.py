"""The manifest -> podman translation the node test relies on (no root, no podman)."""

from __future__ import annotations

import copy
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import manifest_podman  # noqa: E402

DS = manifest_podman.load_daemonset(Path(__file__).resolve().parents[1] / "conf" / "daemonset.yaml")


def test_every_field_of_the_shipped_manifest_is_translated() -> None:
    out = manifest_podman.containers(DS, node_name="n1", extra_volumes=["/sa:/var/run/secrets/x:ro"],
                                     extra_env={"KUBERNETES_SERVICE_HOST": "127.0.0.1"})
    assert list(out) == ["install", "daemon"]
    spec = DS["spec"]["template"]["spec"]
    daemon, manifest = out["daemon"], spec["containers"][0]
    args = daemon.run_args("d", "img:tag", detach=True)
    assert args[:4] == ["run", "-d", "--name", "d"]
    assert args[args.index("img:tag") - 1] == manifest["command"][0]
    assert args[args.index("img:tag") + 1:] == manifest["command"][1:]
    assert args[args.index("--network"):args.index("--network") + 2] == ["--network", "host"]
    assert "--privileged" in args and "--env" in args and "NODE_NAME=n1" in args
    assert args[args.index("--stop-timeout") + 1] == str(spec["terminationGracePeriodSeconds"])
    volumes = [args[i + 1] for i, a in enumerate(args) if a == "--volume"]
    for mount in manifest["volumeMounts"]:
        assert any(v.startswith(f"{mount['mountPath']}:{mount['mountPath']}:") for v in volumes), mount
    assert "/run/netns:/run/netns:rw,rslave" in volumes
    assert daemon.probes["readiness"] == manifest["readinessProbe"]["exec"]["command"]
    assert ("/run/xtables.lock", "File") in daemon.host_paths
    install = out["install"].run_args("i", "img:tag", detach=False)
    assert install[:2] == ["run", "--rm"] and install[install.index("--cap-drop"):][:2] == ["--cap-drop", "all"]
    assert "--privileged" not in install


@pytest.mark.parametrize("edit", [
    lambda c: c.update(ports=[{"containerPort": 1}]),
    lambda c: c["securityContext"].update(runAsUser=1000),
    lambda c: c["env"].append({"name": "X", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}),
    lambda c: c["livenessProbe"].update(exec=None, httpGet={"port": 1}) or c["livenessProbe"].pop("exec"),
])
def test_what_it_cannot_translate_is_an_error(edit) -> None:
    ds = copy.deepcopy(DS)
    edit(ds["spec"]["template"]["spec"]["containers"][0])
    with pytest.raises(manifest_podman.Unsupported):
        manifest_podman.containers(ds, node_name="n1")


def test_a_volume_that_is_not_a_host_path_is_an_error() -> None:
    ds = copy.deepcopy(DS)
    ds["spec"]["template"]["spec"]["volumes"][0] = {"name": "cni-conf", "emptyDir": {}}
    with pytest.raises(manifest_podman.Unsupported, match="hostPath"):
        manifest_podman.containers(ds, node_name="n1")
