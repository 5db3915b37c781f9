"""portmap's and masq's config models are their one check: values, defaults, option conflicts
and the backend they imply (the replaced hand parsers are kept here as the reference)."""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from metacni.plugin import CNIError, Code, validate_config
from metacni_plugins.masq.config import MasqConfig
from metacni_plugins.portmap.config import PortmapConfig


def test_defaults_and_nulls() -> None:
    keys = PortmapConfig.model_validate({"snat": None, "markMasqBit": None, "conditionsV4": None, "backend": ""})
    assert (keys.snat, keys.masq_all, keys.mark_bit, keys.conditions_v4, keys.firewall) == (True, False, 13, [], None)
    assert PortmapConfig.model_validate({"markMasqBit": 0}).mark_bit == 0


@pytest.mark.parametrize(("conf", "backend"), [
    ({}, None),
    ({"backend": "nftables"}, "nftables"),
    ({"externalSetMarkChain": "KUBE-MARK-MASQ"}, "iptables"),
    ({"conditionsV4": ["-s", "10.0.0.0/8"]}, "iptables"),
    ({"conditionsV6": ["ip6", "saddr", "fd00::/8"]}, "nftables"),
])
def test_options_imply_their_backend(conf: dict[str, Any], backend: str | None) -> None:
    assert PortmapConfig.model_validate(conf).firewall == backend


@pytest.mark.parametrize(("conf", "field"), [
    ({"externalSetMarkChain": ""}, "$.externalSetMarkChain"),
    ({"externalSetMarkChain": "X", "markMasqBit": 3}, "externalSetMarkChain"),
    ({"conditionsV4": ["-s", "10.0.0.0/8"], "conditionsV6": ["ip6", "saddr", "fd00::/8"]}, "both backends"),
    ({"backend": "iptables", "conditionsV6": ["ip6", "saddr", "fd00::/8"]}, "conditionsV6"),
    ({"conditionsV4": ["-j", "ACCEPT"]}, "$.conditionsV4"),
    ({"snat": "yes"}, "$.snat"),
])
def test_conflicts_are_code_7_naming_the_key(conf: dict[str, Any], field: str) -> None:
    with pytest.raises(CNIError) as err:
        validate_config(PortmapConfig, conf, "pm-net", "portmap config")
    assert err.value.code == Code.INVALID_CONFIG and field in err.value.details and "'pm-net'" in err.value.details


def old_cidrs(raw: Any) -> tuple[Any, ...] | None:
    """The replaced ``parse_cidrs`` after the old model's ``list[str]`` check; None when refused."""
    if raw is None:
        return ()
    if not isinstance(raw, list) or not all(isinstance(item, str) for item in raw):
        return None
    try:
        return tuple(ipaddress.ip_network(item, strict=False) for item in raw)
    except ValueError:
        return None


def new_cidrs(raw: Any) -> tuple[Any, ...] | None:
    try:
        return tuple(validate_config(MasqConfig, {"nonMasqueradeCIDRs": raw}, "n").non_masquerade_cidrs)
    except CNIError:
        return None


cidr_texts = st.one_of(st.ip_addresses().map(str), st.tuples(st.ip_addresses(v=4), st.integers(0, 34)).map(
    lambda t: f"{t[0]}/{t[1]}"), st.text(max_size=8))


@given(st.one_of(st.none(), st.lists(st.one_of(cidr_texts, st.integers()), max_size=4), st.text(max_size=4)))
def test_masq_cidrs_are_the_hand_parsers(raw: Any) -> None:
    assert new_cidrs(raw) == old_cidrs(raw)
