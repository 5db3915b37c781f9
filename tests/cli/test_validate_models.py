"""``metacni validate`` with plugin config models: every problem of every plugin object and
ipam section, in-tree or third-party, each with its JSON path; exit 1."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest

METACNI = shutil.which("metacni") or "metacni"


def validate(path: Path, *extra: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([METACNI, "validate", str(path), "--no-plugin-check", *extra], capture_output=True,
                          text=True, timeout=120, env=env)


def conflist(tmp_path: Path, *plugins: dict) -> Path:
    path = tmp_path / "net.conflist"
    path.write_text(json.dumps({"cniVersion": "1.0.0", "name": "n", "plugins": list(plugins)}))
    return path


def lines(proc: subprocess.CompletedProcess[str], path: Path) -> list[str]:
    return [line.removeprefix(f"{path}: ") for line in proc.stdout.splitlines()]


BAD_BRIDGE = {"type": "bridge", "bridge": "br-much-too-long-name", "vlan": 5000, "ipMasqBackend": "pf",
              "hairpinMode": "yes"}
BAD_IPAM = {"type": "host-local", "ranges": [[{"subnet": "10.0.0.0/33"}],
                                             [{"subnet": "10.1.0.0/24", "rangeStart": "x"}]]}


def test_every_bridge_key_problem_is_listed(tmp_path: Path) -> None:
    path = conflist(tmp_path, BAD_BRIDGE)
    proc = validate(path)
    assert proc.returncode == 1, proc.stdout
    found = lines(proc, path)
    for where in ("$.plugins[0].bridge", "$.plugins[0].vlan", "$.plugins[0].ipMasqBackend",
                  "$.plugins[0].hairpinMode"):
        assert any(line.startswith(f"{where}: ") for line in found), (where, found)


def test_host_local_ipam_problems_are_listed_with_their_paths(tmp_path: Path) -> None:
    path = conflist(tmp_path, {"type": "bridge", "ipam": BAD_IPAM})
    proc = validate(path)
    assert proc.returncode == 1, proc.stdout
    found = lines(proc, path)
    assert "$.plugins[0].ipam.ranges[0][0].subnet: invalid CIDR '10.0.0.0/33'" in found, found
    assert "$.plugins[0].ipam.ranges[1][0].rangeStart: invalid IP address 'x'" in found, found
    assert len(found) == 2, found


def test_bridge_and_ipam_problems_together(tmp_path: Path) -> None:
    path = conflist(tmp_path, dict(BAD_BRIDGE, ipam=BAD_IPAM), {"type": "portmap", "markMasqBit": 40})
    found = lines(validate(path), path)
    paths = {line.split(": ", 1)[0] for line in found}
    assert {"$.plugins[0].bridge", "$.plugins[0].ipam.ranges[0][0].subnet",
            "$.plugins[0].ipam.ranges[1][0].rangeStart", "$.plugins[1].markMasqBit"} <= paths, found


def test_a_good_file_stays_valid(tmp_path: Path) -> None:
    path = conflist(tmp_path, {"type": "bridge", "bridge": "cni9", "isGateway": True,
                               "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.9.0.0/24",
                                                                           "rangeStart": "10.9.0.10"}]],
                                        "routes": [{"dst": "0.0.0.0/0"}]}},
                    {"type": "portmap", "capabilities": {"portMappings": True}, "snat": True})
    proc = validate(path)
    assert proc.returncode == 0, proc.stdout


THIRD_PARTY = '''
from pydantic import Field
from metacni.plugin import PluginConfig, hookimpl


class {cls}(PluginConfig):
    level: int = Field(1, ge=1, le=3)
    mode: str


@hookimpl
def cni_config_model():
    return {cls}


@hookimpl
def cni_add(request):
    return request.prev_result
'''


@pytest.fixture
def third_party(tmp_path: Path) -> tuple[str, dict[str, str]]:
    """A plugin installed the way any third-party one is: a module and a dist-info with a
    ``metacni.plugins`` entry point, on PYTHONPATH for the CLI's process."""
    suffix = uuid.uuid4().hex[:8]
    module, plugin_type = f"thirdparty_{suffix}", f"third-{suffix}"
    site = tmp_path / "site"
    (site / f"{module}-0.1.dist-info").mkdir(parents=True)
    (site / f"{module}.py").write_text(THIRD_PARTY.format(cls=f"Config{suffix}"))
    (site / f"{module}-0.1.dist-info" / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {module}\n"
                                                               "Version: 0.1\n")
    (site / f"{module}-0.1.dist-info" / "entry_points.txt").write_text(
        f"[metacni.plugins]\n{plugin_type} = {module}\n")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")])))
    return plugin_type, env


def test_a_third_party_model_is_checked(tmp_path: Path, third_party: tuple[str, dict[str, str]]) -> None:
    plugin_type, env = third_party
    path = conflist(tmp_path, {"type": "bridge", "mtu": -1, "ipam": BAD_IPAM}, {"type": plugin_type, "level": 7})
    proc = validate(path, env=env)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    paths = {line.split(": ", 1)[0] for line in lines(proc, path)}
    assert {"$.plugins[1].level", "$.plugins[1].mode", "$.plugins[0].mtu",
            "$.plugins[0].ipam.ranges[0][0].subnet", "$.plugins[0].ipam.ranges[1][0].rangeStart"} <= paths, \
        proc.stdout
    good = conflist(tmp_path, {"type": plugin_type, "level": 2, "mode": "fast"})
    assert validate(good, env=env).returncode == 0


def test_the_docs_example_plugins_bad_config_is_reported(tmp_path: Path) -> None:
    pytest.importorskip("metacni_tuning.config", reason="pip install -e docs/examples/metacni-tuning")
    path = conflist(tmp_path, {"type": "tuning-py", "mtu": 10, "mac": "nope",
                               "sysctl": {"kernel.hostname": "x"}, "allowedSysctls": "net.*"})
    proc = validate(path)
    assert proc.returncode == 1, proc.stdout
    paths = {line.split(": ", 1)[0] for line in lines(proc, path)}
    assert {"$.plugins[0].mtu", "$.plugins[0].mac", "$.plugins[0].sysctl",
            "$.plugins[0].allowedSysctls"} <= paths, proc.stdout


def test_meta_keys_and_its_delegates_are_checked(tmp_path: Path) -> None:
    path = tmp_path / "00-metacni.conf"
    path.write_text(json.dumps({"cniVersion": "1.0.0", "name": "m", "type": "metacni", "maxAttachments": 0,
                                "delegates": [{"type": "bridge", "mtu": "x"},
                                              {"cniVersion": "1.0.0", "name": "l",
                                               "plugins": [{"type": "bridge", "ipam": BAD_IPAM},
                                                           {"type": "portmap", "snat": "y"}]}]}))
    proc = validate(path)
    assert proc.returncode == 1, proc.stdout
    paths = {line.split(": ", 1)[0] for line in lines(proc, path)}
    assert paths == {"$.maxAttachments", "$.delegates[0].mtu", "$.delegates[1].plugins[0].ipam.ranges[0][0].subnet",
                     "$.delegates[1].plugins[0].ipam.ranges[1][0].rangeStart",
                     "$.delegates[1].plugins[1].snat"}, proc.stdout
