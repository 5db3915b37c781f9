"""Each feature's two layouts, without a kernel: what ADD writes, DEL can read back; every rule
an attachment owns carries its comment; and no engine function switches on a feature kind."""

from __future__ import annotations

import ast
import ipaddress
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from metacni.firewall import feature
from metacni.firewall.identity import Attachment
from metacni.firewall.plan import FORWARD, MASQ, PORTMAP, ForwardPlan, MasqPlan, PortMapping, PortmapPlan

FIREWALL = Path(feature.__file__).parent

names = st.text(alphabet="abcdefghij0123456789-", min_size=1, max_size=12)
attachments = st.builds(Attachment, names, names, st.sampled_from(["eth0", "net1"]))
v4 = st.builds(lambda n, p: ipaddress.IPv4Interface((n, p)), st.integers(0x0A000001, 0x0AFFFFFE), st.integers(8, 32))
v6 = st.builds(lambda n, p: ipaddress.IPv6Interface((n, p)), st.integers(1, 2**64), st.integers(48, 128))
mappings = st.builds(PortMapping, st.integers(1, 65535), st.integers(1, 65535), st.sampled_from(["tcp", "udp", "sctp"]),
                     st.one_of(st.none(), st.builds(ipaddress.IPv4Address, st.integers(0x01000001, 0xDFFFFFFE))))
portmaps = st.builds(PortmapPlan, attachments, st.lists(mappings, min_size=1, max_size=4, unique_by=lambda m: (
    m.host_port, m.protocol, m.host_ip)).map(tuple), v4, st.one_of(st.none(), v6), snat=st.booleans(),
    masq_all=st.booleans())
masqs = st.builds(MasqPlan, attachments, st.lists(st.one_of(v4, v6), min_size=1, max_size=3).map(tuple),
                  st.lists(st.one_of(v4, v6).map(lambda i: i.network), max_size=3).map(tuple))
forwards = st.builds(ForwardPlan, attachments, st.lists(st.one_of(v4, v6), min_size=1, max_size=3).map(tuple))
plans = st.one_of(portmaps, masqs, forwards)


def _freeze(key: object) -> object:
    if isinstance(key, dict):
        return tuple(str(k) for k in key["concat"])
    return str(key)


@given(plans)
def test_nft_keys_read_back_from_the_rules_are_the_elements_written(plan):
    """DEL without memory derives the map elements from the attachment's listed rules."""
    feat = feature.of(plan.kind)
    want = feat.nft_wanted(plan)
    assert want.chains and all(c.startswith(feat.nft_roles) for c in want.chains)
    read = set()
    for chain, rules in want.chains.items():
        for exprs in rules:
            elem = feat.nft_key(chain, exprs)
            assert elem is not None
            read.add((elem[0], _freeze(elem[1]), chain))
    assert read == {(m, _freeze(k), c) for m, k, c in want.elems}
    assert {m for m, _, _ in want.elems} <= {name for name, _ in feat.nft_maps()}


@given(plans, st.sampled_from([4, 6]))
def test_every_owned_iptables_rule_carries_the_attachment_comment(plan, version):
    feat = feature.of(plan.kind)
    layout = feat.ipt_layout(plan, version)
    comment = plan.attachment.comment(plan.kind)
    for spec in layout.owned:
        assert spec.tokens[spec.tokens.index("--comment") + 1] == comment
        assert spec.table == feat.ipt_table
        assert spec.chain in feat.ipt_chains(plan.attachment) | set(feat.ipt_rule_chains) or \
            spec.chain in {c for _, c in layout.chains}
    assert bool(layout.owned) == _installs(plan, version)


def _installs(plan, version: int) -> bool:
    """Whether the plan has anything to install for the IP ``version`` (reference semantics)."""
    if plan.kind == PORTMAP:  # a mapping with a host IP of the other family is skipped
        return (plan.ipv4 if version == 4 else plan.ipv6) is not None and bool(plan.mappings_for(version))
    return any(ip.version == version for ip in plan.addresses)


@pytest.mark.parametrize("kind", [PORTMAP, MASQ, FORWARD])
def test_each_kind_has_one_module_with_both_layouts(kind):
    feat = feature.of(kind)
    assert feat.kind == kind
    module = Path(__import__(feature.MODULES[kind], fromlist=["FEATURE"]).__file__)
    assert module.parent == FIREWALL and module.stem == kind
    assert feat.nft_table.startswith("metacni_") and feat.ipt_table in ("nat", "filter")


def _kind_switches(tree: ast.AST) -> list[str]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare) and isinstance(node.left, ast.Name | ast.Attribute):
            name = node.left.id if isinstance(node.left, ast.Name) else node.left.attr
            if name == "kind" and any(isinstance(op, ast.Eq | ast.NotEq) for op in node.ops):
                found.append(f"line {node.lineno}: kind ==")
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "isinstance":
            target = node.args[1] if len(node.args) > 1 else None
            names = [n.id for n in ast.walk(target) if isinstance(n, ast.Name)] if target else []
            if any(n.endswith("Plan") for n in names):
                found.append(f"line {node.lineno}: isinstance(.., *Plan)")
    return found


@pytest.mark.parametrize("path", sorted(FIREWALL.glob("*.py")), ids=lambda p: p.name)
def test_no_function_switches_on_a_feature_kind(path):
    assert _kind_switches(ast.parse(path.read_text())) == []


def test_the_switch_detector_can_fail():
    assert len(_kind_switches(ast.parse("if plan.kind == 'masq' or isinstance(p, MasqPlan): pass"))) == 2
