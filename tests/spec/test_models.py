"""Plugin config models: every problem with its JSON path; the first one as CNI error 7."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import Field, field_validator

from metacni.meta.config import MetaConfig, MetaKeys
from metacni.plugin import CNIError, Code, PluginConfig, ReferenceConfig, unsupported, validate_config
from metacni.spec.models import model_problems
from metacni_plugins.bridge.model import BridgeConfig
from metacni_plugins.host_local.model import HostLocalConfig


class Small(PluginConfig):
    level: int = Field(1, ge=1, le=3)
    names: list[str] | str | None = None


def test_unknown_keys_pass_and_json_types_are_not_coerced() -> None:
    assert Small.model_validate({"type": "x", "other": {"a": 1}, "level": 2}).level == 2
    assert model_problems(Small, {"level": "2"}) == [("$.level", "Input should be a valid integer")]
    assert model_problems(Small, {"level": True}) == [("$.level", "Input should be a valid integer")]


def test_union_members_become_one_problem_at_the_field() -> None:
    ((path, reason),) = model_problems(Small, {"names": 5}, "$.plugins[3]")
    assert path == "$.plugins[3].names" and " or " in reason


def test_validate_config_is_code_7_naming_the_path_network_and_count() -> None:
    with pytest.raises(CNIError) as err:
        validate_config(Small, {"level": 9, "names": 5}, "net-a", "small config")
    assert err.value.code == Code.INVALID_CONFIG and err.value.msg == "invalid small config"
    assert err.value.details.startswith("network 'net-a': $.level: ") and "1 more" in err.value.details


def test_host_local_paths_reach_the_range_field() -> None:
    conf = {"ipam": {"type": "host-local", "subnet": "10.5.0.0/24",
                     "ranges": [[{"subnet": "10.0.0.0/24"}, {"subnet": "10.0.0.0/33"}],
                                [{"subnet": "10.1.0.0/24", "rangeStart": "x", "rangeEnd": "10.2.0.1"}]]}}
    found = dict(model_problems(HostLocalConfig, conf))
    assert set(found) == {"$.ipam.ranges[0][1].subnet", "$.ipam.ranges[1][0].rangeStart",
                          "$.ipam.ranges[1][0].rangeEnd"}, found
    assert "10.2.0.1 not in network 10.1.0.0/24" in found["$.ipam.ranges[1][0].rangeEnd"]


@given(st.ip_addresses(v=4), st.integers(min_value=0, max_value=40))
def test_host_local_subnet_agrees_with_the_range_parser(addr: ipaddress.IPv4Address, prefix: int) -> None:
    from metacni_plugins.host_local.ranges import RangeError, parse_range

    subnet = f"{addr}/{prefix}"
    try:
        parse_range({"subnet": subnet}, "r")
        expected_ok = True
    except RangeError:
        expected_ok = False
    problems = model_problems(HostLocalConfig, {"ipam": {"ranges": [[{"subnet": subnet}]]}})
    assert (problems == []) == expected_ok, problems


@given(st.sampled_from(["mtu", "vlan"]), st.integers(min_value=-5, max_value=70000))
def test_bridge_integer_bounds(key: str, value: int) -> None:
    hi = 65535 if key == "mtu" else 4094
    problems = model_problems(BridgeConfig, {key: value})
    assert (problems == []) == (0 <= value <= hi), problems
    assert all(path == f"$.{key}" for path, _ in problems)


def test_meta_keys_keep_their_multus_forms() -> None:
    cfg = MetaConfig.from_dict({"cniVersion": "1.0.0", "name": "m", "namespaceIsolation": "TRUE",
                                "globalNamespaces": "a, b", "confDir": "", "maxAttachments": 3,
                                "readinessTimeout": 5})
    assert cfg.namespace_isolation and cfg.global_namespaces == ["a", "b"]
    assert cfg.conf_dir == Path("/etc/cni/net.d") and cfg.max_attachments == 3 and cfg.readiness_timeout == 5.0
    for bad, path in (({"maxAttachments": 0}, "$.maxAttachments"), ({"maxAttachments": True}, "$.maxAttachments"),
                      ({"readinessTimeout": -1}, "$.readinessTimeout"), ({"confDir": "rel"}, "$: confDir"),
                      ({"delegates": [1]}, "$.delegates[0]"), ({"namespaceIsolation": "maybe"},
                                                               "$.namespaceIsolation")):
        with pytest.raises(CNIError) as err:
            MetaConfig.from_dict({"cniVersion": "1.0.0", "name": "m", **bad})
        assert err.value.code == Code.INVALID_CONFIG and path in err.value.details, (bad, err.value.details)
    assert not model_problems(MetaKeys, {"type": "metacni", "delegates": [{"type": "bridge"}]})


class Go(ReferenceConfig):
    flag: bool = Field(False, alias="someFlag")
    level: int = Field(3, alias="level")
    note: str | None = Field(None, alias="note")
    trunk: Any = Field(None, alias="trunk")

    @field_validator("trunk")
    @classmethod
    def _trunk(cls, value: Any) -> Any:
        return value and _refuse(value)


def _refuse(value: Any) -> Any:
    raise unsupported(repr(value), "not built")


def test_reference_config_reads_null_as_the_default_and_json_names_only() -> None:
    keys = Go.model_validate({"someFlag": None, "level": None, "note": None, "other": None})
    assert (keys.flag, keys.level, keys.note) == (False, 3, None)
    assert Go.model_validate({"flag": True}).flag is False  # the Python name is no JSON key
    assert model_problems(Go, {"someFlag": "yes", "level": True}) == [
        ("$.someFlag", "Input should be a valid boolean"), ("$.level", "Input should be a valid integer")]


def test_unsupported_is_code_2_unless_a_value_is_invalid() -> None:
    with pytest.raises(CNIError) as err:
        validate_config(Go, {"trunk": [1]}, "net-u", "go config")
    assert err.value.code == Code.UNSUPPORTED_FIELD and err.value.msg == "unsupported go config field"
    assert err.value.details == "network 'net-u': $.trunk: [1] is not supported yet: not built"
    with pytest.raises(CNIError) as err:
        validate_config(Go, {"trunk": [1], "level": "x"}, "net-u", "go config")
    assert err.value.code == Code.INVALID_CONFIG and "$.level" in err.value.details and "1 more" in err.value.details
    assert ("$.trunk", "[1] is not supported yet: not built") in model_problems(Go, {"trunk": [1]})


def test_meta_keys_include_the_api_keys() -> None:
    found = dict(model_problems(MetaKeys, {"apiTimeout": 0, "apiRetries": -1, "kubeconfig": 5}))
    assert set(found) == {"$.apiTimeout", "$.apiRetries", "$.kubeconfig"}, found
    cfg = MetaConfig.from_dict({"cniVersion": "1.0.0", "name": "m", "apiTimeout": 2, "kubeconfig": None,
                                "multusNamespace": "", "metacniNamespace": "mc", "systemNamespaces": None})
    assert (cfg.kube.timeout, cfg.kube.kubeconfig, cfg.multus_namespace) == (2.0, None, "mc")
    assert cfg.system_namespaces == ["kube-system"]
