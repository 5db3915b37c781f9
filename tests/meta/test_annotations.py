"""The selection-annotation parser: examples and properties (hypothesis)."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from metacni.meta.annotations import AnnotationError, NetworkSelection, parse_default_network, parse_networks

ALNUM = "abcdefghijklmnopqrstuvwxyz0123456789"
# DNS-1123 labels, built directly (a regex strategy is too slow under a loaded CI machine).
label = st.sampled_from(ALNUM) | st.builds(lambda a, mid, b: a + mid + b, st.sampled_from(ALNUM),
                                           st.text(ALNUM + "-", max_size=8), st.sampled_from(ALNUM))
ifname = st.text(st.characters(min_codepoint=33, max_codepoint=126, exclude_characters="/:,@\"[{"),
                 min_size=1, max_size=15).filter(lambda s: s not in (".", ".."))


def test_examples():
    assert parse_networks("", "ns") == []
    assert parse_networks("  ", "ns") == []
    [a, b, c] = parse_networks(" net-a , other/net-b@data0,net-c@net_1 ", "ns")
    assert (a.namespace, a.name, a.interface) == ("ns", "net-a", None)
    assert (b.namespace, b.name, b.interface) == ("other", "net-b", "data0")
    assert c.interface == "net_1"  # kernel rule, not DNS-1123 (as Multus)
    [j] = parse_networks('[{"name":"n","interfaceRequest":"legacy0","ipRequest":"ignored"}]', "ns")
    assert j.interface == "legacy0" and j.extra == {"ipRequest": "ignored"}
    [one] = parse_networks('{"name": "n"}', "ns")
    assert one.ref == "ns/n"


@pytest.mark.parametrize("bad", [
    "a/b/c", "a@b@c", "UPPER", "a_b", "ns/", "@eth1", "a@0123456789abcdef", "a@x y", "a@x/y",
    '[{"name": 1}]', "[1]", '[{"name": "a", "ips": "10.0.0.1"}]', '[{"name": "a", "mac": "zz"}]',
    '[{"name": "a", "default-route": ["10.0.0.0/8"]}]', '[{"name": "a", "cni-args": []}]',
    '[{"name": "a", "portMappings": {}}]', '"a"', "[", '[{"name": "a", "interface": "a:b"}]',
])
def test_rejected(bad):
    with pytest.raises(AnnotationError) as info:
        parse_networks(bad, "ns")
    assert info.value.code == 7 and info.value.details


def test_default_network_override_needs_exactly_one():
    assert parse_default_network("alt", "kube-system").ref == "kube-system/alt"
    assert parse_default_network(None, "kube-system") is None
    with pytest.raises(AnnotationError):
        parse_default_network("a,b", "kube-system")


sel_strategy = st.builds(
    NetworkSelection, name=label, namespace=label,
    interface=st.none() | ifname,
    ips=st.none() | st.lists(st.ip_addresses().map(str), max_size=3),
    mac=st.none() | st.just("02:00:00:00:00:01"),
    cni_args=st.none() | st.dictionaries(st.text(max_size=5), st.integers(), max_size=2),
)


@given(st.lists(sel_strategy, max_size=5))
def test_json_form_round_trips(selections):
    text = json.dumps([s.to_json() for s in selections])
    parsed = parse_networks(text, "default")
    assert [p.to_json() for p in parsed] == [s.to_json() for s in selections]


@given(st.lists(st.tuples(st.none() | label, label, st.none() | ifname), max_size=6), label)
def test_comma_form_parses_what_it_renders(items, pod_ns):
    text = ",".join(f"{ns + '/' if ns else ''}{name}{'@' + ifn if ifn else ''}" for ns, name, ifn in items)
    parsed = parse_networks(text, pod_ns)
    assert [(p.namespace, p.name, p.interface) for p in parsed] == [(ns or pod_ns, n, i) for ns, n, i in items]


@given(st.text(max_size=60))
def test_arbitrary_text_is_parsed_or_rejected_cleanly(text):
    try:
        parsed = parse_networks(text, "default")
    except AnnotationError as exc:
        assert exc.details
        return
    for sel in parsed:
        assert sel.name and sel.namespace
        assert sel.interface is None or (0 < len(sel.interface.encode()) <= 15 and "/" not in sel.interface
                                         and not any(c.isspace() for c in sel.interface))
