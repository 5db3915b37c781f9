"""Property tests for the parsers: ranges, lease files, resolv.conf, round-robin order."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from metacni_plugins.host_local.ranges import RangeError, candidates, parse_range, parse_range_set
from metacni_plugins.host_local.resolv import parse_resolv_conf
from metacni_plugins.host_local.store import lease_ip, parse_lease, render_lease

ids = st.from_regex(r"[a-zA-Z0-9][a-zA-Z0-9_.\-]{0,63}", fullmatch=True)
ifnames = st.from_regex(r"[a-zA-Z0-9_.\-]{1,15}", fullmatch=True)


@given(ids, ifnames)
def test_lease_round_trip(cid, ifname):
    text = render_lease(cid, ifname)
    assert "\n" not in text.replace("\r\n", "") and not text.endswith("\n")
    assert parse_lease(text) == (cid, ifname)
    assert parse_lease(f"  {text}\n") == (cid, ifname)  # Go trims whitespace before matching


@given(ids)
def test_legacy_lease_is_id_only(cid):
    assert parse_lease(cid + "\n") == (cid, None)


@given(st.text())
def test_lease_parser_never_raises(text):
    cid, ifname = parse_lease(text)
    assert isinstance(cid, str)


@given(st.integers(0, 2**32 - 1) | st.integers(0, 2**128 - 1))
def test_lease_file_names_are_canonical_addresses(n):
    ip = ipaddress.ip_address(n)
    assert lease_ip(str(ip)) == ip
    if ip.exploded != str(ip):  # only Go's canonical (compressed) spelling names a lease
        assert lease_ip(ip.exploded) is None


@pytest.mark.parametrize("name", ["lock", "last_reserved_ip.0", ".tmp-abc", "10.0.0.01"])
def test_non_lease_names(name):
    assert lease_ip(name) is None


@given(st.integers(0, 2**32 - 1), st.integers(8, 30))
def test_v4_range_defaults(n, prefix):
    net = ipaddress.ip_network((n, prefix), strict=False)
    r = parse_range({"subnet": str(net)}, "r")
    assert r.gateway == r.start == net.network_address + 1
    assert r.end == net.broadcast_address - 1
    assert not r.contains(net.network_address) and not r.contains(net.broadcast_address)


@given(st.integers(0, 2**128 - 1), st.integers(64, 126))
def test_v6_range_ends_at_last_address(n, prefix):
    net = ipaddress.ip_network((n, prefix), strict=False)
    assert parse_range({"subnet": str(net)}, "r").end == net.broadcast_address


@given(st.integers(0, 2**32 - 1), st.integers(8, 29))
def test_host_bits_refused(n, prefix):
    net = ipaddress.ip_network((n, prefix), strict=False)
    host = net.network_address + 1
    with pytest.raises(RangeError, match="host bits"):
        parse_range({"subnet": f"{host}/{prefix}"}, "ipam.ranges[0][0]")


@pytest.mark.parametrize("subnet", ["10.0.0.0/31", "10.0.0.1/32", "fd00::/127", "fd00::/128"])
def test_too_small(subnet):
    with pytest.raises(RangeError, match="too small|host bits"):
        parse_range({"subnet": subnet}, "r")


@pytest.mark.parametrize(("obj", "match"), [
    ({"subnet": "10.0.0.0/24", "rangeStart": "10.0.1.5"}, "rangeStart"),
    ({"subnet": "10.0.0.0/24", "rangeEnd": "fd00::1"}, "rangeEnd"),
    ({"subnet": "10.0.0.0/24", "rangeStart": "10.0.0.9", "rangeEnd": "10.0.0.5"}, "after"),
    ({"subnet": "nope"}, "subnet"),
    ({}, "subnet"),
])
def test_bad_ranges_name_the_field(obj, match):
    with pytest.raises(RangeError, match=match):
        parse_range(obj, "ipam.ranges[0][0]")


def test_range_set_rules():
    with pytest.raises(RangeError, match="overlap"):
        parse_range_set([{"subnet": "10.0.0.0/24"}, {"subnet": "10.0.0.0/25"}], "s")
    with pytest.raises(RangeError, match="mixed"):
        parse_range_set([{"subnet": "10.0.0.0/24"}, {"subnet": "fd00::/64"}], "s")
    with pytest.raises(RangeError, match="empty"):
        parse_range_set([], "s")


@given(st.integers(3, 40), st.integers(0, 60), st.booleans())
def test_round_robin_visits_everything_once(size, last_offset, two_ranges):
    ranges = [{"subnet": "10.9.0.0/24", "rangeStart": "10.9.0.10", "rangeEnd": f"10.9.0.{10 + size}"}]
    if two_ranges:
        ranges.append({"subnet": "10.9.1.0/28"})
    rs = parse_range_set(ranges, "s")
    every = [ip for r in rs for ip in map(ipaddress.ip_address, range(int(r.start), int(r.end) + 1))
             if ip != r.gateway]
    last = ipaddress.ip_address(int(ipaddress.ip_address("10.9.0.0")) + last_offset)
    order = [ip for ip, _ in candidates(rs, last)]
    assert sorted(order) == sorted(every)  # each address exactly once, gateway never
    if last in every:
        assert order[-1] == last  # the last reserved one is tried last
        assert order[0] == every[(every.index(last) + 1) % len(every)]
    else:
        assert order == every


@given(st.lists(st.sampled_from(["nameserver 10.0.0.1", "nameserver fd00::1", "domain a.example",
                                 "search x.example y.example", "options ndots:5", "# comment",
                                 "; other", "", "junk", "   nameserver 1.1.1.1  "]), max_size=12))
def test_resolv_conf(lines):
    dns = parse_resolv_conf("\n".join(lines))
    expected_ns = [ln.split()[1] for ln in lines if ln.strip().startswith("nameserver")]
    assert (dns.nameservers or []) == expected_ns
    domains = [ln.split()[1] for ln in lines if ln.startswith("domain")]
    assert dns.domain == (domains[-1] if domains else None)
    assert (dns.search or []) == [w for ln in lines if ln.startswith("search") for w in ln.split()[1:]]
