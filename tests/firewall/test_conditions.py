"""portmap ``conditionsV4``/``conditionsV6`` are tenant input (a NAD writes them): they may only
narrow which packets the rule matches (issue #14 follow-up 3, docs/security.md)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from metacni.firewall import conditions
from metacni.plugin import CNIError
from metacni.spec.results import Result
from metacni_testkit.firewall_testbed import Testbed, prime_legacy, ruleset
from metacni_testkit.netns import netns_path

V4_ONLY = Result.model_validate({
    "cniVersion": "1.0.0",
    "interfaces": [{"name": "eth0", "sandbox": "/run/netns/x"}],
    "ips": [{"address": "10.88.0.5/24", "interface": 0}],
})

REFUSED = [
    ["-j", "ACCEPT"],
    ["-d", "192.0.2.1", "-j", "ACCEPT"],
    ["-d", "192.0.2.1", "--jump", "DNAT", "--to-destination", "10.0.0.1:22"],
    ["-s", "10.0.0.0/8", "-g", "KUBE-SERVICES"],
    ["-d", "192.0.2.1", "--goto", "INPUT"],
    ["-t", "filter", "-d", "192.0.2.1"],
    ["--table", "filter"],
    ["-A", "INPUT"],
    ["-F"],
    ["-p", "udp"],
    ["!", "--protocol", "udp"],
    ["--destination-ports", "1:65535"],  # would rewrite the multiport match metacni wrote
    ["-m", "comment", "--comment", "forged owner"],
    ["-m", "recent", "--set", "--name", "node-list"],
    ["-m", "hashlimit", "--hashlimit-name", "node", "--hashlimit-upto", "1/s"],
    ["-m", "addrtype", "--dst-type", "LOCAL", "--jump", "ACCEPT"],
    ["-d", "192.0.2.1 -j ACCEPT"],
    ["-d"],
    ["-m"],
]

ALLOWED = [
    ["-d", "192.0.2.0/24"],
    ["!", "-s", "10.0.0.0/8", "-i", "vnode"],
    ["-m", "addrtype", "--dst-type", "LOCAL"],
    ["-m", "iprange", "!", "--src-range", "10.1.0.1-10.1.0.9"],
]


@pytest.mark.parametrize("tokens", REFUSED, ids=" ".join)
def test_non_match_iptables_conditions_are_refused(tokens: list[str]):
    for where in ("conditionsV4", "conditionsV6"):
        with pytest.raises(CNIError) as info:
            conditions.check_iptables_tokens(tuple(tokens), where)
        assert info.value.code == 7 and where in info.value.details


@pytest.mark.parametrize("tokens", ALLOWED, ids=" ".join)
def test_match_only_iptables_conditions_pass(tokens: list[str]):
    conditions.check_iptables_tokens(tuple(tokens), "conditionsV4")


_WORDS = st.sampled_from(["!", "-d", "1.2.3.4", "-m", "addrtype", "--dst-type", "LOCAL", "-i", "eth0", "x"])
_VERDICTS = st.sampled_from(["-j", "--jump", "-g", "--goto", "-t", "--table", "-p", "--protocol", "-A", "-I"])


@given(st.lists(_WORDS, max_size=6), _VERDICTS, st.lists(_WORDS, max_size=6))
def test_a_verdict_table_or_command_anywhere_is_refused(before: list[str], verdict: str, after: list[str]):
    with pytest.raises(CNIError):
        conditions.check_iptables_tokens((*before, verdict, "ACCEPT", *after), "conditionsV4")


@pytest.mark.parametrize("tokens", [("ip", "saddr", "@node_set"), ("ip", "daddr", "$x"),
                                    ("ip", "daddr", "1.2.3.4", "accept"), ("ip", "daddr", "1.2.3.4;", "accept"),
                                    ("tcp", "dport", "22", "counter"), ("meta", "nftrace", "set", "1")])
def test_nft_conditions_cannot_inject(tokens: tuple[str, ...]):
    with pytest.raises(CNIError) as info:
        conditions.nft_matches(tokens, "conditionsV6")
    assert info.value.code == 7 and "conditionsV6" in info.value.details


def _add(tb: Testbed, tokens: list[str], cid: str) -> Result | None:
    conf = {"capabilities": {"portMappings": True}, "backend": "iptables", "conditionsV4": tokens,
            "runtimeConfig": {"portMappings": [{"hostPort": 8080, "containerPort": 80}]}}
    return tb.call("portmap", "ADD", conf, cid, netns_path(tb.node), V4_ONLY)


@pytest.mark.parametrize("tokens", [REFUSED[1], REFUSED[4], REFUSED[5], REFUSED[12]], ids=" ".join)
def test_refused_conditions_install_nothing(box, tmp_path, tokens: list[str]):
    tb = Testbed(box).setup(str(tmp_path))
    prime_legacy(tb.node)
    before = ruleset(tb.node)
    with pytest.raises(CNIError) as info:
        _add(tb, tokens, "cond-bad")
    assert info.value.code == 7 and "conditionsV4" in info.value.details
    assert ruleset(tb.node) == before


def test_allowed_conditions_are_installed_in_the_rule(box, tmp_path):
    tb = Testbed(box).setup(str(tmp_path))
    prime_legacy(tb.node)
    _add(tb, ["-d", "192.0.2.0/24", "-m", "addrtype", "--dst-type", "LOCAL"], "cond-ok")
    rules = ruleset(tb.node)
    dnat = [ln for ln in rules.splitlines() if "CNI-HOSTPORT-DNAT" in ln and "8080" in ln]
    assert dnat and "-d 192.0.2.0/24" in dnat[0] and "--dst-type LOCAL" in dnat[0], rules
