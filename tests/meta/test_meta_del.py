"""DEL: from the delegate record without any API access, and loud-but-thorough without it."""

from __future__ import annotations

import logging

import pytest

from metacni.spec.errors import CNIError

NETWORKS = "k8s.v1.cni.cncf.io/networks"
PRIMARY = "primary-net"


@pytest.fixture
def attached(node):
    node.two_nads()
    pod = node.pod(annotations={NETWORKS: "net-a,net-b"})
    node.cni("ADD", pod)
    assert node.pod_links(pod) == {"lo", "eth0", "net1", "net2"}
    assert len(node.veths()) == 3 and len(node.all_leases()) == 3
    return pod


def test_del_after_pod_and_nads_are_gone(node, attached):
    node.api.delete_pod("default", "web")
    node.api.delete_nad("default", "net-a")
    node.api.delete_nad("default", "net-b")
    node.api.reset_counts()
    node.cni("DEL", attached)
    assert node.api.count() == 0  # DEL never needs the API
    node.assert_clean(attached)


def test_del_with_api_unreachable(node, attached):
    node.api.stop()
    node.cni("DEL", attached)
    node.assert_clean(attached)


def test_del_is_idempotent(node, attached):
    node.cni("DEL", attached)
    node.cni("DEL", attached)  # no record any more: the primary is deleted again, harmlessly
    node.assert_clean(attached)


@pytest.mark.parametrize("damage", [b"", b'{"kind": "metacniDelegatesV1", "contai', b"\x00" * 64])
def test_corrupt_record_still_tears_everything_down(node, attached, damage, caplog):
    record = node.cni_dir / attached.container_id
    record.write_bytes(damage)
    node.api.stop()
    with caplog.at_level(logging.ERROR, logger="metacni"):
        node.cni("DEL", attached)
    assert any("corrupt metacni delegate cache" in r.getMessage() for r in caplog.records)
    node.assert_clean(attached)
    quarantined = list((node.cni_dir / "corrupt").iterdir())
    assert [p.read_bytes() for p in quarantined] == [damage]  # kept for the operator


def test_missing_record_tears_down_from_result_cache(node, attached, caplog):
    (node.cni_dir / attached.container_id).unlink()
    node.api.stop()
    with caplog.at_level(logging.ERROR, logger="metacni"):
        node.cni("DEL", attached)
    messages = " ".join(r.getMessage() for r in caplog.records)
    assert "no delegate cache" in messages and "default/net-a" not in messages  # labels from the cache
    assert "net-a (net1)" in messages and "net-b (net2)" in messages
    node.assert_clean(attached)


def test_nothing_identifiable_is_an_error_not_silent_success(node, attached):
    (node.cni_dir / attached.container_id).unlink()
    for name in node.result_cache_files():
        (node.cni_dir / "results" / name).unlink()
    (node.conf_dir / "10-primary.conflist").unlink()
    with pytest.raises(CNIError) as info:
        node.cni("DEL", attached)
    assert "cannot identify networks to delete" in info.value.msg
    assert "pod default/web" in info.value.details


def test_failed_delegate_del_keeps_record_for_retry(node, attached):
    """A DEL that fails keeps the record so the retry reaches every delegate (Multus #355)."""
    import base64
    import json

    record = node.cni_dir / attached.container_id
    original = record.read_bytes()
    data = json.loads(original)
    net_b = data["delegates"][2]
    conf = json.loads(base64.b64decode(net_b["config"]))
    conf = {"cniVersion": conf["cniVersion"], "name": conf["name"],
            "plugins": [{k: v for k, v in conf.items() if k not in ("cniVersion", "name")},
                        {"type": "metacni-test-absent"}]}
    net_b["config"] = base64.b64encode(json.dumps(conf).encode()).decode()
    record.write_text(json.dumps(data))
    with pytest.raises(CNIError) as info:
        node.cni("DEL", attached)
    assert info.value.msg == "failed to delete networks"
    assert "pod default/web" in info.value.details and "default/net-b (net2)" in info.value.details
    assert record.exists()
    assert node.pod_links(attached) == {"lo", "net2"}  # the others were still deleted (spec 7.2)
    record.write_bytes(original)
    node.cni("DEL", attached)
    node.assert_clean(attached)


def test_check_uses_record(node, attached):
    node.api.stop()
    node.cni("CHECK", attached)
    node.cni("DEL", attached)
    with pytest.raises(CNIError):
        node.cni("CHECK", attached)
