"""Bad portmap input is CNI error 7 naming the field, and nothing is installed."""

from __future__ import annotations

import pytest

from metacni.plugin import CNIError
from metacni.spec.results import Result
from metacni_testkit.firewall_testbed import Testbed, prime_legacy, ruleset
from metacni_testkit.netns import netns_path

V4_ONLY = Result.model_validate(
    {
        "cniVersion": "1.0.0",
        "interfaces": [{"name": "eth0", "sandbox": "/run/netns/x"}],
        "ips": [{"address": "10.88.0.5/24", "interface": 0}],
    }
)

CASES = [
    ({}, [{"hostPort": 0, "containerPort": 80}], "hostPort"),
    ({}, [{"hostPort": 65536, "containerPort": 80}], "hostPort"),
    ({}, [{"hostPort": 80, "containerPort": 80, "protocol": "icmp"}], "protocol"),
    ({}, [{"hostPort": 80, "containerPort": 80, "hostIP": "2001:db8::1"}], "hostIP"),
    ({}, [{"hostPort": 80, "containerPort": 0}], "containerPort"),
    (
        {"externalSetMarkChain": "KUBE-MARK-MASQ", "markMasqBit": 14},
        [{"hostPort": 80, "containerPort": 80}],
        "externalSetMarkChain",
    ),
    (
        {"externalSetMarkChain": "KUBE-MARK-MASQ", "backend": "nftables"},
        [{"hostPort": 80, "containerPort": 80}],
        "externalSetMarkChain",
    ),
    ({"markMasqBit": 32}, [{"hostPort": 80, "containerPort": 80}], "markMasqBit"),
    ({"backend": "ipfw"}, [{"hostPort": 80, "containerPort": 80}], "backend"),
    (
        {"backend": "nftables", "conditionsV4": ["-d", "10.0.0.0/8"]},
        [{"hostPort": 80, "containerPort": 80}],
        "conditionsV4",
    ),
    (
        {"backend": "nftables", "conditionsV4": ["ct", "state", "new"]},
        [{"hostPort": 80, "containerPort": 80}],
        "conditionsV4",
    ),
    (
        {"backend": "iptables", "conditionsV4": ["-m", "nosuchmatch", "--x", "1"]},
        [{"hostPort": 80, "containerPort": 80}],
        "conditionsV4",
    ),
]


@pytest.mark.parametrize(("extra", "mappings", "field"), CASES)
def test_portmap_bad_input_is_code_7_and_installs_nothing(box, tmp_path, extra, mappings, field):
    tb = Testbed(box).setup(str(tmp_path))
    prime_legacy(tb.node)
    before = ruleset(tb.node)
    good = [{"hostPort": 81, "containerPort": 81, "protocol": "udp"}]  # valid entries before the bad one
    conf = {
        "capabilities": {"portMappings": True},
        "runtimeConfig": {"portMappings": good + mappings},
        **extra,
    }
    with pytest.raises(CNIError) as err:
        tb.call("portmap", "ADD", conf, "bad-1", netns_path(tb.node), V4_ONLY)
    assert err.value.code == 7
    assert field in err.value.details or field in err.value.msg
    assert ruleset(tb.node) == before
