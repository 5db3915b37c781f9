"""Result parsing, wire shapes and conversion between all seven versions."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from metacni.spec import versions
from metacni.spec.errors import CNIError, Code
from metacni.spec.results import Result, convert, parse_result
from metacni.testing.strategies import results

ALL = versions.ALL_VERSIONS
FAM_100 = ["1.0.0", "1.1.0"]
FAM_040 = ["0.3.0", "0.3.1", "0.4.0"]
FAM_020 = ["0.1.0", "0.2.0"]


def wire_roundtrip(result: Result) -> Result:
    return parse_result(json.loads(json.dumps(result.to_wire())))


@given(results(), st.sampled_from(ALL))
def test_any_result_converts_to_every_version_or_is_refused_for_020(result: Result, target: str) -> None:
    if versions.family(target) == versions.FAMILY_020 and not result.ips:
        with pytest.raises(CNIError) as err:
            convert(result, target)
        assert "no valid IP addresses" in err.value.details
        return
    out = convert(result, target)
    assert out.cni_version == target
    assert wire_roundtrip(out) == out


@given(results("1.0.0"), st.sampled_from(FAM_100), st.sampled_from(FAM_100))
def test_within_1x_family_lossless(result: Result, a: str, b: str) -> None:
    there = convert(convert(result, a), b)
    back = convert(there, result.cni_version)
    assert back == result


@given(results("0.4.0", with_11_fields=False), st.sampled_from(FAM_040), st.sampled_from(FAM_100))
def test_040_up_to_1x_and_back_is_lossless(result: Result, start: str, up: str) -> None:
    result = convert(result, start)
    assert convert(convert(result, up), start) == result


@given(results("1.1.0", with_11_fields=False), st.sampled_from(FAM_040))
def test_1x_down_to_040_and_back_is_lossless_without_11_interface_fields(result: Result, down: str) -> None:
    assert convert(convert(result, down), "1.1.0") == result


@given(results("1.1.0", with_11_fields=True), st.sampled_from(FAM_040))
def test_1x_to_040_drops_interface_11_fields_but_keeps_route_fields(result: Result, down: str) -> None:
    out = convert(result, down)
    wire = out.to_wire()
    for iface in wire.get("interfaces", []):
        assert set(iface) <= {"name", "mac", "sandbox"}
    assert [r.model_dump() for r in out.routes] == [r.model_dump() for r in result.routes]
    assert all(ip["version"] in ("4", "6") for ip in wire.get("ips", []))


@given(results("1.1.0", min_ips=1), st.sampled_from(FAM_020))
def test_down_to_020_keeps_first_ip_per_family_and_routes_with_an_address(result: Result, down: str) -> None:
    out = convert(result, down)
    first4 = next((ip for ip in result.ips if ip.ip_version == 4), None)
    first6 = next((ip for ip in result.ips if ip.ip_version == 6), None)
    assert [ip.address for ip in out.ips] == [ip.address for ip in (first4, first6) if ip]
    assert all(ip.interface is None for ip in out.ips)
    assert out.interfaces == []
    fams = {ip.ip_version for ip in out.ips}
    expected = [(r.dst, r.gw) for fam in (4, 6) for r in result.routes if r.ip_version == fam and fam in fams]
    assert [(r.dst, r.gw) for r in out.routes] == expected
    assert out.dns == result.dns
    wire = out.to_wire()
    assert set(wire) <= {"cniVersion", "ip4", "ip6", "dns"} and "dns" in wire


@given(results("0.2.0", with_11_fields=False, min_ips=1).map(lambda r: convert(r, "0.2.0")),
       st.sampled_from(FAM_020), st.sampled_from(FAM_040 + FAM_100))
def test_020_up_and_back_down_is_lossless(result: Result, start: str, up: str) -> None:
    result = convert(result, start)
    assert convert(convert(result, up), start) == result


def test_digest_example_three_ips_to_020() -> None:
    result = parse_result({"cniVersion": "1.0.0", "ips": [
        {"address": "10.1.0.5/16"}, {"address": "10.2.0.5/16"}, {"address": "fd00::5/64"}]})
    wire = convert(result, "0.2.0").to_wire()
    assert wire == {"cniVersion": "0.2.0", "ip4": {"ip": "10.1.0.5/16"}, "ip6": {"ip": "fd00::5/64"}, "dns": {}}


@pytest.mark.parametrize("target", ["0.5.0", "1.2.0", "2.0.0"])
def test_unknown_target_refused(target: str) -> None:
    with pytest.raises(CNIError) as err:
        convert(Result(cniVersion="1.0.0"), target)
    assert err.value.code == Code.INCOMPATIBLE_VERSION
    assert f"to {target}" in err.value.details


def test_empty_target_means_010() -> None:
    r = parse_result({"cniVersion": "1.0.0", "ips": [{"address": "10.0.0.2/24"}]})
    assert convert(r, "").cni_version == "0.1.0"


def test_wire_key_rules_per_family() -> None:
    r = Result(cniVersion="1.1.0")
    assert r.to_wire() == {"cniVersion": "1.1.0", "dns": {}}  # always written, as Go's types do
    assert convert(r, "0.4.0").to_wire() == {"cniVersion": "0.4.0", "dns": {}}  # always in 0.4
    assert "version" not in parse_result({"cniVersion": "1.0.0", "ips": [
        {"version": "4", "address": "10.0.0.2/24"}]}).to_wire()["ips"][0]


def test_prev_result_of_another_family_rejected_when_expected() -> None:
    with pytest.raises(CNIError) as err:
        parse_result({"cniVersion": "0.4.0", "ips": []}, expected_version="1.1.0")
    assert "unmarshalled CNIVersion" in err.value.details
    assert parse_result({"cniVersion": "1.0.0"}, expected_version="1.1.0").cni_version == "1.0.0"
    assert parse_result({}, expected_version="0.3.1").cni_version == "0.3.1"


@settings(max_examples=50)
@given(st.dictionaries(st.text(max_size=5), st.integers() | st.text(max_size=5), max_size=4))
def test_garbage_results_are_decode_errors_never_crashes(data: dict) -> None:
    try:
        parse_result({"cniVersion": "1.0.0", "ips": [data]})
    except CNIError as exc:
        assert exc.code in (Code.DECODE_FAILURE, Code.INCOMPATIBLE_VERSION)
