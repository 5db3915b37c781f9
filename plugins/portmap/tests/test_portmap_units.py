"""Hash helpers against the digest's vectors; parsers and comment helpers with Hypothesis."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from metacni.firewall import conditions
from metacni.firewall.backend import iptables_alternative
from metacni.firewall.identity import (
    Attachment,
    dnat_chain,
    go_quote,
    masq_chain,
    parse_comment,
    prefixed_chain,
)
from metacni.firewall.plan import parse_port_mapping, parse_port_mappings
from metacni.plugin import CNIError

LONG_ID = (
    "icee6giejonei6sohng6ahngee7laquohquee9shiGo7fohferakah3Feiyoolu2pei7ciPhoh7shaoX6vai3vuf0ahfaeng8y"
    "ohb9ceu0daez5hashee8ooYai5wa3y"
)


def test_portmap_reference_hash_vectors():
    assert dnat_chain("testNetName", LONG_ID) == "CNI-DN-bfd599665540dd91d5d28"
    assert prefixed_chain("PREFIX-", "test", "1234") == "CNI-PREFIX-2bbe0c48b91a7d1b8"
    assert masq_chain("test", "1234") == "CNI-2bbe0c48b91a7d1b8a6753a8"


def test_portmap_go_quote():
    assert go_quote('a"b\\c') == '"a\\"b\\\\c"'
    assert go_quote("x\ny\x01") == '"x\\ny\\x01"'


@given(st.text(max_size=80), st.text(max_size=200), st.text(min_size=1, max_size=15))
def test_portmap_comment_round_trip(net, cid, ifname):
    att = Attachment(net, cid, ifname)
    for kind in ("portmap", "masq", "forward"):
        comment = att.comment(kind)
        assert len(comment.encode()) <= 128 and '"' not in comment
        assert att.owns(comment, kind)
        assert not att.owns(comment, "other")
        parsed = parse_comment(comment)
        assert parsed == (att.tag.split("-")[0], att.tag, kind)


@given(
    st.integers(),
    st.integers(),
    st.sampled_from(["tcp", "UDP", "sctp", "icmp", "", None]),
    st.sampled_from([None, "", "10.0.0.1", "::1", "nope"]),
    st.booleans(),
)
def test_portmap_mapping_parser(host, container, proto, host_ip, upper):
    raw = {"hostPort": host, "containerPort": container, "protocol": proto, "hostIP": host_ip}
    if upper:
        raw = {k[0].upper() + k[1:]: v for k, v in raw.items()}
    valid = (
        1 <= host <= 65535
        and 1 <= container <= 65535
        and (proto or "tcp").lower() in ("tcp", "udp", "sctp")
        and host_ip in (None, "", "10.0.0.1", "::1")
    )
    if valid:
        m = parse_port_mapping(raw, "m")
        assert (m.host_port, m.container_port, m.protocol) == (host, container, (proto or "tcp").lower())
    else:
        with pytest.raises(CNIError) as err:
            parse_port_mapping(raw, "m")
        assert err.value.code == 7 and err.value.details.startswith("m.")


def test_portmap_mapping_list_conflicts():
    with pytest.raises(CNIError, match=r"\[1\].hostPort"):
        parse_port_mappings([{"hostPort": 80, "containerPort": 80}, {"hostPort": 80, "containerPort": 81}])
    assert len(parse_port_mappings([{"hostPort": 80, "containerPort": 80}] * 2)) == 1


def test_portmap_nft_conditions():
    got = conditions.nft_matches(("ip", "daddr", "!=", "10.0.0.0/8", "iifname", "eth0"), "conditionsV4")
    assert got[0]["match"]["op"] == "!=" and got[0]["match"]["right"]["prefix"]["len"] == 8
    assert got[1]["match"]["left"] == {"meta": {"key": "iifname"}}
    assert conditions.syntax(("-d", "1.2.3.4")) == "iptables"
    assert conditions.syntax(("!", "-d", "1.2.3.4")) == "iptables"
    with pytest.raises(CNIError, match="conditionsV6"):
        conditions.nft_matches(("ct", "state", "new"), "conditionsV6")


def test_portmap_alternative_follows_the_link_chain():
    assert iptables_alternative() in ("nftables", "iptables", None)
