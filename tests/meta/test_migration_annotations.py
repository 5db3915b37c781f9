"""Multus parity of the networks annotation (issue #18, migration items 2 and 3).

Multus' ``parsePodNetworkObjectName`` (k8sclient.go) splits ``name@ifname`` and keeps an empty
interface part as "no interface requested"; its JSON form unmarshals ``name`` without a pattern,
and Kubernetes object names are DNS-1123 subdomains (dots allowed).
"""

from __future__ import annotations

import pytest

from metacni.meta.annotations import AnnotationError, parse_networks
from metacni.meta.networks import Delegate, assign_ifnames
from metacni.spec.config import network_list_from_bytes


def _net() -> object:
    return network_list_from_bytes(b'{"cniVersion":"1.0.0","name":"n","type":"bridge"}', "t")


@pytest.mark.parametrize("value", ["net1@", "ns/net1@", " net1@ ", '[{"name": "net1", "interface": ""}]'])
def test_empty_interface_part_means_name_it_for_me(value: str):
    [sel] = parse_networks(value, "ns")
    assert sel.name == "net1" and sel.interface is None
    delegates = [Delegate(label="primary", net=_net(), ifname="eth0", primary=True),
                 Delegate(label=sel.ref, net=_net(), ifname=sel.interface or "", selection=sel)]
    assign_ifnames(delegates)
    assert [d.ifname for d in delegates] == ["eth0", "net1"]  # Multus: net<position>


def test_dotted_nad_names_are_accepted_in_the_json_form():
    [sel] = parse_networks('[{"name": "sriov.net-a", "namespace": "tenant-a", "interface": "sr0"}]', "ns")
    assert sel.ref == "tenant-a/sriov.net-a" and sel.interface == "sr0"


@pytest.mark.parametrize("bad", ['[{"name": "a..b"}]', '[{"name": ".a"}]', '[{"name": "a."}]',
                                 '[{"name": "A.b"}]', '[{"name": "' + "a" * 254 + '"}]'])
def test_json_names_that_no_api_server_accepts_are_refused_naming_the_rule(bad: str):
    with pytest.raises(AnnotationError) as info:
        parse_networks(bad, "ns")
    assert info.value.code == 7 and "DNS-1123 subdomain" in info.value.details


def test_namespace_stays_a_label_in_the_json_form():
    with pytest.raises(AnnotationError) as info:
        parse_networks('[{"name": "a.b", "namespace": "x.y"}]', "ns")
    assert "namespace" in info.value.details
