"""The bridge config model against the hand-written parser it replaced (kept here as the
reference): the same values accepted, the same refused, with the same code."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from metacni.plugin import CNIError, Code, validate_config
from metacni_plugins.bridge.model import BridgeConfig, mac_adapter

MAC = re.compile(r"[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}")
near_mac = st.lists(st.text(alphabet="0123456789abcdefABCDEFgG: \n", max_size=3), min_size=0, max_size=8).map(":".join)


def old_mac(value: Any) -> str | None:
    """The replaced ``config._mac`` check: a str of the pattern, not multicast; lower-cased."""
    if not isinstance(value, str) or not MAC.fullmatch(value) or int(value[:2], 16) & 1:
        return None
    return value.lower()


def new_mac(value: Any) -> str | None:
    try:
        return mac_adapter().validate_python(value, strict=True)
    except ValidationError:
        return None


@given(st.one_of(near_mac, st.text(max_size=20), st.integers(), st.none()))
def test_mac_model_accepts_what_the_parser_accepted(value: Any) -> None:
    assert new_mac(value) == old_mac(value)


def test_mac_examples() -> None:
    assert new_mac("02:aa:BB:cc:dd:ee") == "02:aa:bb:cc:dd:ee"
    assert new_mac("02:aa:bb:cc:dd:ee\n") is None and new_mac("02aabbccddee") is None
    assert new_mac("03:aa:bb:cc:dd:ee") is None  # multicast


FLAGS = ("isGateway", "isDefaultGateway", "forceAddress", "hairpinMode", "promiscMode", "preserveDefaultVlan",
         "enabledad", "disableContainerInterface", "portIsolation", "ipMasq", "macspoofchk")
RANGES = {"mtu": (0, 65535), "vlan": (0, 4094)}


def old_code(cfg: Mapping[str, Any]) -> int:
    """The replaced ``config.load`` checks of these keys: 0 (accepted), 7 or 2."""
    for key in FLAGS:
        if cfg.get(key) is not None and not isinstance(cfg[key], bool):
            return 7
    for key, (lo, hi) in RANGES.items():
        value = cfg.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi):
            return 7
    if cfg.get("hairpinMode") and cfg.get("promiscMode"):
        return 7
    if cfg.get("vlanTrunk"):
        return 2
    if cfg.get("vlan") and (cfg.get("isGateway") or cfg.get("isDefaultGateway")):
        return 2
    return 0


JSON_SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-2, 70000), st.text(max_size=3), st.floats(0, 2))
configs = st.dictionaries(st.sampled_from([*FLAGS, *RANGES, "vlanTrunk"]), JSON_SCALARS, max_size=6)


def new_code(cfg: dict[str, Any]) -> int:
    try:
        validate_config(BridgeConfig, cfg, "net")
    except CNIError as exc:
        return int(exc.code)
    return 0


@given(configs)
def test_model_refuses_what_the_parser_refused_with_its_code(cfg: dict[str, Any]) -> None:
    assert new_code(cfg) == old_code(cfg)


def test_null_is_the_default() -> None:
    keys = BridgeConfig.model_validate({"bridge": None, "mtu": None, "hairpinMode": None, "isGateway": None})
    assert (keys.bridge, keys.mtu, keys.hairpin, keys.gateway) == ("cni0", 0, False, False)
    assert BridgeConfig.model_validate({"bridge": ""}).bridge == "cni0"
    assert BridgeConfig.model_validate({"isDefaultGateway": True}).gateway


@pytest.mark.parametrize(("cfg", "code", "path"), [
    ({"vlanTrunk": [{"id": 5}]}, Code.UNSUPPORTED_FIELD, "$.vlanTrunk"),
    ({"vlan": 5, "isDefaultGateway": True}, Code.UNSUPPORTED_FIELD, "vlan=5"),
    ({"vlanTrunk": [{"id": 5}], "mtu": "1500"}, Code.INVALID_CONFIG, "$.mtu"),  # invalid beats unsupported
    ({"dns": {"nameservers": "1.1.1.1"}}, Code.INVALID_CONFIG, "$.dns"),
    ({"dns": 5}, Code.INVALID_CONFIG, "$.dns"),
    ({"hairpinMode": True, "promiscMode": True}, Code.INVALID_CONFIG, "hairpinMode"),
])
def test_refusals_name_the_key_and_network(cfg: dict[str, Any], code: int, path: str) -> None:
    with pytest.raises(CNIError) as err:
        validate_config(BridgeConfig, cfg, "net-x", "bridge config")
    assert err.value.code == code and path in err.value.details and "'net-x'" in err.value.details


def test_empty_dns_is_none() -> None:
    empties: list[Any] = [{}, [], "", {"nameservers": []}]
    for empty in empties:
        assert BridgeConfig.model_validate({"dns": empty}).dns is None
    dns = BridgeConfig.model_validate({"dns": {"nameservers": ["10.0.0.10"]}}).dns
    assert dns is not None and dns.nameservers == ["10.0.0.10"]


def test_bridge_conf_is_the_model_plus_the_call() -> None:
    from dataclasses import fields

    from metacni.engine.request import Invocation, Request
    from metacni_plugins.bridge.config import BridgeConf, load

    conf = {"cniVersion": "1.0.0", "name": "n1", "type": "bridge", "mtu": 1400, "isDefaultGateway": True,
            "ipam": {"type": "host-local"}, "args": {"cni": {"mac": "02:00:00:00:00:0A"}}}
    loaded = load(Request(Invocation("ADD", ifname="eth0"), conf))
    keys = BridgeConfig.model_validate(conf)
    derived = {"network": "n1", "mac": "02:00:00:00:00:0a", "is_gateway": True, "has_ipam": True}
    for f in fields(BridgeConf):
        expected = derived[f.name] if f.name in derived else getattr(keys, f.name)
        assert getattr(loaded, f.name) == expected, f.name
