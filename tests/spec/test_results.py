"""Result parsing, wire shapes and conversion between all seven versions."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from metacni.spec import versions
from metacni.spec.errors import CNIError, Code
from metacni.spec.results import DNS, Interface, IPConfig, Result, Route, convert, parse_result
from metacni_testkit.strategies import results

ALL = versions.ALL_VERSIONS
FAM_100 = ["1.0.0", "1.1.0"]
FAM_040 = ["0.3.0", "0.3.1", "0.4.0"]
FAM_020 = ["0.1.0", "0.2.0"]
# Drawing a whole result takes ~30 ms here; on a loaded 2-core machine hypothesis' input-speed
# health check and 200 ms deadline then fail tests whose assertions held.
generated = settings(suppress_health_check=[HealthCheck.too_slow], deadline=None)


def wire_roundtrip(result: Result) -> Result:
    return parse_result(json.loads(json.dumps(result.to_wire())))


@generated
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


@generated
@given(results("1.0.0"), st.sampled_from(FAM_100), st.sampled_from(FAM_100))
def test_within_1x_family_lossless(result: Result, a: str, b: str) -> None:
    there = convert(convert(result, a), b)
    back = convert(there, result.cni_version)
    assert back == result


@generated
@given(results("0.4.0", with_11_fields=False), st.sampled_from(FAM_040), st.sampled_from(FAM_100))
def test_040_up_to_1x_and_back_is_lossless(result: Result, start: str, up: str) -> None:
    result = convert(result, start)
    assert convert(convert(result, up), start) == result


@generated
@given(results("1.1.0", with_11_fields=False), st.sampled_from(FAM_040))
def test_1x_down_to_040_and_back_is_lossless_without_11_interface_fields(result: Result, down: str) -> None:
    assert convert(convert(result, down), "1.1.0") == result


@generated
@given(results("1.1.0", with_11_fields=True), st.sampled_from(FAM_040))
def test_1x_to_040_drops_interface_11_fields_but_keeps_route_fields(result: Result, down: str) -> None:
    out = convert(result, down)
    wire = out.to_wire()
    for iface in wire.get("interfaces", []):
        assert set(iface) <= {"name", "mac", "sandbox"}
    assert [r.model_dump() for r in out.routes] == [r.model_dump() for r in result.routes]
    assert all(ip["version"] in ("4", "6") for ip in wire.get("ips", []))


@generated
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


@generated
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


@pytest.mark.parametrize(("data", "path"), [
    ({"cniVersion": "1.0.0", "ips": [{"address": "10.0.0.2/24"}, {"address": "nope"}]}, "$.ips[1].address"),
    ({"cniVersion": "1.0.0", "ips": [{"gateway": "10.0.0.1"}]}, "$.ips[0].address"),
    ({"cniVersion": "1.1.0", "interfaces": [{"name": "eth0", "mtu": "big"}]}, "$.interfaces[0].mtu"),
    ({"cniVersion": "1.0.0", "routes": [{"dst": "0.0.0.0/0", "gw": "10.0.0.256"}]}, "$.routes[0].gw"),
    ({"cniVersion": "1.0.0", "dns": {"nameservers": ["10.0.0.53", 53]}}, "$.dns.nameservers[1]"),
    ({"cniVersion": "0.4.0", "ips": "10.0.0.2/24"}, "$.ips"),
    ({"cniVersion": "0.2.0", "ip4": {"ip": "10.0.0.2/24", "gateway": "x"}}, "$.ip4.gateway"),
    ({"cniVersion": "0.2.0", "ip6": {"ip": "fd00::2/64", "routes": [{"gw": "fd00::1"}]}}, "$.ip6.routes[0].dst"),
    ({"cniVersion": "0.2.0", "ip4": {"ip": "10.0.0.2/24", "routes": "default"}}, "$.ip4.routes"),
    ({"cniVersion": "0.1.0", "ip4": {"ip": "10.0.0.2/24", "routes": ["default"]}}, "$.ip4.routes[0]"),
])
def test_decode_errors_name_the_json_path(data: dict, path: str) -> None:
    with pytest.raises(CNIError) as err:
        parse_result(data)
    assert err.value.code == Code.DECODE_FAILURE
    assert err.value.details.startswith(f"{path}: "), err.value.details


def test_integers_are_read_laxly_strings_strictly() -> None:
    r = parse_result({"cniVersion": "1.1.0", "interfaces": [{"name": "eth0", "mtu": "1500"}],
                      "ips": [{"address": "10.0.0.2/24", "interface": 0.0}],
                      "routes": [{"dst": "0.0.0.0/0", "table": " 7 "}]})
    assert (r.interfaces[0].mtu, r.ips[0].interface, r.routes[0].table) == (1500, 0, 7)
    for bad in ({"interfaces": [{"name": 5}]}, {"ips": [{"address": "10.0.0.2/24", "interface": 1.5}]},
                {"dns": {"domain": ["a"]}}):
        with pytest.raises(CNIError):
            parse_result({"cniVersion": "1.1.0", **bad})


def test_constructors_normalise_validate_and_accept_json_objects() -> None:
    r = Result(cniVersion="1.0.0", ips=[{"address": "fd00::0005/64", "gateway": "fd00::01"}],
               interfaces=[Interface(name="eth0", socketPath="/s")])
    assert r.ips[0] == IPConfig(address="fd00::5/64", gateway="fd00::1")
    assert r.interfaces[0].socket_path == "/s" and r.interfaces[0] == Interface(name="eth0", socket_path="/s")
    assert Result(cni_version="0.4.0").cni_version == "0.4.0"
    with pytest.raises(ValueError, match=r"\$\.address: invalid CIDR address"):
        IPConfig(address="10.0.0.300/24")
    with pytest.raises(ValueError, match=r"\$\.ips\[0\]\.address"):
        Result(ips=[{"address": 7}])


def test_model_api_copy_dump_equality() -> None:
    r = parse_result({"cniVersion": "1.1.0", "interfaces": [{"name": "eth0", "pciID": "0000:04:00.5"}],
                      "routes": [{"dst": "10.0.0.0/8"}], "dns": {"search": ["a"]}})
    deep, shallow = r.model_copy(deep=True), r.model_copy()
    assert deep == r and shallow == r and deep is not r
    deep.routes.append(Route(dst="0.0.0.0/0"))
    deep.dns.search.append("b")
    assert len(r.routes) == 1 and r.dns.search == ["a"] and deep != r
    shallow.routes.append(Route(dst="0.0.0.0/0"))
    assert len(r.routes) == 2  # a shallow copy shares its lists, as pydantic's does
    assert r.model_copy(update={"ips": []}).ips == []
    assert r.interfaces[0].model_dump(by_alias=True, exclude_none=True) == {"name": "eth0", "pciID": "0000:04:00.5"}
    assert r.model_dump()["interfaces"][0]["pci_id"] == "0000:04:00.5"
    assert DNS.model_validate({"domain": "x", "other": 1}) == DNS(domain="x")
    assert "pci_id='0000:04:00.5'" in repr(r)


@settings(max_examples=100, suppress_health_check=[HealthCheck.too_slow])
@given(results())
def test_clone_is_a_deep_copy(r: Result) -> None:
    before = r.model_copy(deep=True)
    c = r.clone()
    assert c == before and c.model_dump() == before.model_dump() and c is not r
    # change every mutable part of the clone: the original stays as it was
    c.cni_version = "0.3.1"
    c.interfaces.append(Interface(name="x"))
    c.ips.append(IPConfig(address="10.9.9.9/32"))
    c.routes.append(Route(dst="0.0.0.0/0"))
    for iface in c.interfaces:
        iface.name, iface.mtu = iface.name + "-c", 1
    for ip in c.ips:
        ip.gateway = "10.9.9.1"
    for route in c.routes:
        route.gw = "10.9.9.1"
    for key in ("nameservers", "search", "options"):
        if getattr(c.dns, key) is not None:
            getattr(c.dns, key).append("changed")
    c.dns.domain = "changed"
    assert r == before and r.model_dump() == before.model_dump()


@settings(max_examples=50)
@given(st.dictionaries(st.sampled_from(["ip", "gateway", "routes"]),
                       st.integers() | st.text(max_size=5) | st.lists(st.integers() | st.text(max_size=3), max_size=2),
                       max_size=3))
def test_garbage_020_results_are_decode_errors_never_crashes(entry: dict) -> None:
    try:
        parse_result({"cniVersion": "0.2.0", "ip4": entry})
    except CNIError as exc:
        assert exc.code == Code.DECODE_FAILURE
