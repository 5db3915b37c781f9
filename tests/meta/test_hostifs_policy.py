"""Property tests for the host-interface policy (metacni/meta/hostifs.py): any NAD plugin object
is either accepted or refused with code 7; what is refused names the field and a setting; the
settings' parser refuses what is not a list of strings."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from metacni.meta.hostifs import DEFAULT_HOST_INTERFACES, HostInterfacePolicy, check_plugin
from metacni.meta.trust import TenantPolicy, is_node_only, sanitize_tenant_config
from metacni.spec.errors import CNIError, Code

names = st.sampled_from(["eth0", "eth1", "ens3", "bond0.100", "cni0", "veth1234", "lo", "flannel.1", "br-x", ""])
values = st.one_of(names, st.none(), st.integers(), st.booleans(), st.lists(names, max_size=2))
plugins = st.fixed_dictionaries(
    {"type": st.sampled_from(["macvlan", "ipvlan", "vlan", "host-device", "bridge", "sriov", "x"])},
    optional={"master": values, "device": values, "hwaddr": values, "kernelpath": values, "deviceID": values,
              "pciBusID": values, "mode": st.sampled_from(["bridge", "passthru", "l2"]), "bridge": values,
              "runtimeConfig": st.fixed_dictionaries({}, optional={"deviceID": values}),
              "ipam": st.fixed_dictionaries({"type": st.sampled_from(["host-local", "static"])})})
SETTINGS = ("hostInterfaces", "hostDevices", "nadPluginTypes")


@given(plugins, st.sampled_from([HostInterfacePolicy(), HostInterfacePolicy(host_interfaces=()),
                                 HostInterfacePolicy(host_devices=("eth1",), nad_plugin_types=("macvlan",))]))
def test_any_plugin_is_accepted_or_refused_with_code_7_naming_a_setting(plugin: dict[str, Any],
                                                                      policy: HostInterfacePolicy):
    try:
        check_plugin(plugin, "plugins[0]", "NetworkAttachmentDefinition ns/n", policy)
    except CNIError as exc:
        assert exc.code == Code.INVALID_CONFIG
        assert "NetworkAttachmentDefinition ns/n: plugins[0]." in exc.details
        assert any(s in exc.details for s in SETTINGS), exc.details
        return
    # accepted: every node link it names is one the policy gives NADs
    if plugin.get("master") not in (None, ""):
        assert policy.may_name_parent(plugin["master"])
    if plugin["type"] == "bridge" and isinstance(plugin.get("bridge"), str):
        assert not policy.may_name_parent(plugin["bridge"])
    taking = ("device", "hwaddr", "kernelpath") if plugin["type"] == "host-device" else ()
    for key in ("deviceID", "pciBusID", *taking):
        if plugin.get(key) not in (None, ""):
            assert policy.may_take(plugin[key])
    if plugin.get("mode") == "passthru" and plugin["type"] == "macvlan":
        assert policy.may_take(plugin.get("master"))


@pytest.mark.parametrize("key", SETTINGS)
@given(bad=st.one_of(st.text(max_size=3), st.integers(), st.lists(st.one_of(st.integers(), st.just("")), min_size=1)))
def test_settings_must_be_lists_of_strings(key: str, bad: object):
    with pytest.raises(CNIError) as info:
        HostInterfacePolicy.from_conf({key: bad})
    assert info.value.code == Code.INVALID_CONFIG and key in info.value.details


def test_settings_are_node_only_and_parsed_by_the_tenant_policy():
    assert all(is_node_only(k) for k in SETTINGS)
    policy = TenantPolicy.from_conf({"hostInterfaces": ["mc*"], "hostDevices": ["eth1"], "nadPluginTypes": ["x"]})
    assert policy.host == HostInterfacePolicy(("mc*",), ("eth1",), ("x",))
    assert TenantPolicy.from_conf({}).host.host_interfaces == DEFAULT_HOST_INTERFACES


def test_a_nad_cannot_widen_the_policy_itself():
    """A NAD carrying hostDevices has it stripped (node-only) and is still refused."""
    data = {"cniVersion": "1.0.0", "name": "n", "type": "host-device", "device": "eth1", "hostDevices": ["*"]}
    with pytest.raises(CNIError) as info:
        sanitize_tenant_config(data, "NetworkAttachmentDefinition ns/n", TenantPolicy())
    assert "hostDevices" not in data and "device 'eth1'" in info.value.details


def test_stripped_tenant_keys_cannot_forge_log_lines(caplog: pytest.LogCaptureFixture):
    """``api<Upper>...`` keys are node-only whatever follows: the rest is tenant text."""
    data = {"cniVersion": "1.0.0", "name": "n", "type": "x", "apiX\nCRITICAL forged line": 1}
    with caplog.at_level("WARNING"):
        sanitize_tenant_config(data, "NetworkAttachmentDefinition ns/n", TenantPolicy())
    [record] = [r for r in caplog.records if "node-only keys ignored" in r.getMessage()]
    assert "\n" not in record.getMessage() and "apiX" in record.getMessage()


def test_metacni_validate_reports_malformed_host_interface_settings(tmp_path):
    """The operator learns of a wrong-typed setting from ``metacni validate``, with its path."""
    import json
    import shutil
    import subprocess

    path = tmp_path / "00-metacni.conf"
    path.write_text(json.dumps({"cniVersion": "1.0.0", "name": "m", "type": "metacni", "hostInterfaces": "eth*",
                                "hostDevices": [1], "nadPluginTypes": ["bridge"]}))
    proc = subprocess.run([shutil.which("metacni") or "metacni", "validate", str(path), "--no-plugin-check"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1, proc.stdout
    reported = {line.removeprefix(f"{path}: ").split(": ", 1)[0] for line in proc.stdout.splitlines()}
    assert reported == {"$.hostInterfaces", "$.hostDevices[0]"}, proc.stdout
