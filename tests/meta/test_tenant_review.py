"""Findings of the attacker's review of tenant strings (issue #14 follow-up 4, docs/security.md)."""

from __future__ import annotations

import json

import pytest

from metacni.meta.annotations import AnnotationError, parse_networks


@pytest.mark.parametrize("ifname", ["x\u0000y", "net\u0001", "a\u007fb", "\u200bnet"])
def test_annotation_interface_names_with_control_characters_are_refused(ifname: str):
    """A NUL truncates the name in netlink (the link and metacni's caches would disagree) and
    breaks every path built from it; control characters have no place in a name either."""
    for text in (json.dumps([{"name": "net-a", "interface": ifname}]), f"net-a@{ifname}"):
        with pytest.raises(AnnotationError) as info:
            parse_networks(text, "default")
        assert info.value.code == 7 and "interface name" in info.value.details


@pytest.mark.parametrize("ifname", ["net1", "eth-a_1", "vlan.100"])
def test_ordinary_annotation_interface_names_pass(ifname: str):
    assert parse_networks(f"net-a@{ifname}", "default")[0].interface == ifname


@pytest.mark.parametrize("device_id", ["0000:03:00.1\n", "../../etc/x", "a/../../b", ".hidden"])
def test_device_info_file_names_from_tenant_ids_stay_plain(device_id: str, tmp_path):
    """A deviceID (annotation) names a device-info file: no trailing newline (Python's ``$``
    matches before one), no directory escape."""
    from metacni.meta import devices
    from metacni.spec.errors import CNIError

    with pytest.raises(CNIError) as info:
        devices.plugin_info_file(str(tmp_path / "cni"), "vendor.com/nic", device_id)
    assert info.value.code == 7 and "device" in info.value.details


def test_a_pci_address_with_a_trailing_newline_is_not_one():
    from metacni.meta import devices

    assert devices.is_pci_address("0000:03:00.1") and not devices.is_pci_address("0000:03:00.1\n")
