"""Property tests for the node policy's parsers and checks (metacni/meta/trust.py)."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st

from metacni.meta.trust import (
    DEFAULT_RESERVED_HOST_PORTS,
    TENANT_KEY,
    TenantPolicy,
    is_node_only,
    sanitize_tenant_config,
)
from metacni.spec.errors import CNIError, Code

ports = st.integers(min_value=1, max_value=65535)


@given(ports, ports)
def test_host_port_range_forms_parse_alike(a: int, b: int):
    low, high = min(a, b), max(a, b)
    assert TenantPolicy.from_conf({"hostPortRange": f"{low}-{high}"}).host_port_range == (low, high)
    assert TenantPolicy.from_conf({"hostPortRange": [low, high]}).host_port_range == (low, high)
    if low != high:
        with pytest.raises(CNIError) as info:
            TenantPolicy.from_conf({"hostPortRange": [high, low]})
        assert info.value.code == Code.INVALID_CONFIG and "hostPortRange" in info.value.details


@given(st.one_of(st.integers(max_value=0), st.integers(min_value=65536), st.booleans(), st.text(max_size=3)))
def test_bad_ports_in_settings_are_code_7(bad: object):
    for conf in ({"hostPortRange": [1, bad]}, {"reservedHostPorts": [bad]}):
        with pytest.raises(CNIError) as info:
            TenantPolicy.from_conf(conf)
        assert info.value.code == Code.INVALID_CONFIG


@given(ports)
def test_default_host_port_policy(port: int):
    policy = TenantPolicy.from_conf({})
    allowed = port >= 1024 and port not in DEFAULT_RESERVED_HOST_PORTS
    try:
        policy.check_host_port(port, "network default/x")
    except CNIError as exc:
        assert not allowed and exc.code == Code.INVALID_CONFIG and f"hostPort {port}" in exc.details
    else:
        assert allowed


@pytest.fixture(scope="module")
def tree() -> Iterator[tuple[str, TenantPolicy]]:
    """root/allowed (allowed), root/allowed/sub (protected: metacni's own), root/other,
    root/allowed.d (a sibling whose name starts with the allowed one's), and
    root/allowed/out -> root/other (a symlink out)."""
    with tempfile.TemporaryDirectory(prefix="mctenant-policy-") as root:
        os.makedirs(os.path.join(root, "allowed", "sub"))
        os.makedirs(os.path.join(root, "other"))
        os.makedirs(os.path.join(root, "allowed.d"))
        os.symlink(os.path.join(root, "other"), os.path.join(root, "allowed", "out"))
        yield root, TenantPolicy.from_conf({"allowedPaths": {"dataDir": [os.path.join(root, "allowed")]}},
                                           (os.path.join(root, "allowed", "sub"),))


def _under(real: str, base: str) -> bool:
    return real == base or real.startswith(base + "/")


@given(segments=st.lists(st.sampled_from(["..", ".", "a", "sub", "out", "other", "allowed", "allowed.d", ""]),
                         max_size=6))
def test_a_path_is_accepted_only_if_it_resolves_inside_the_allowed_dir(tree: tuple[str, TenantPolicy],
                                                                      segments: list[str]):
    root, policy = tree
    path = os.path.join(root, "allowed", *segments)
    real = os.path.realpath(path)
    ok = _under(real, os.path.join(root, "allowed")) and not _under(real, os.path.join(root, "allowed", "sub"))
    try:
        policy.check_path("dataDir", path, "NetworkAttachmentDefinition ns/n: ipam.dataDir")
    except CNIError as exc:
        assert exc.code == Code.INVALID_CONFIG and "ipam.dataDir" in exc.details
        assert not ok
    else:
        assert ok


@given(st.dictionaries(st.sampled_from(["binDir", "logFile", "apiTimeout", "apiary", "bridge", "cniDir",
                                        "mtu", "daemonSocket", "kubeconfig", "allowedPaths"]),
                       st.just("x"), max_size=6))
def test_node_only_keys_are_stripped_and_nothing_else(extra: dict[str, str]):
    data = {"cniVersion": "1.0.0", "name": "n", "type": "bridge", **extra}
    changed = sanitize_tenant_config(data, "NetworkAttachmentDefinition ns/n", TenantPolicy())
    kept = {k for k in extra if not is_node_only(k)}
    assert set(data) == {"cniVersion", "name", "type", TENANT_KEY} | kept  # metacni's own mark added
    assert data[TENANT_KEY] == {"namespace": "", "sharedBridges": []}
    assert changed
    assert "apiary" not in extra or "apiary" in data  # "api" + lower case is not an api* setting
