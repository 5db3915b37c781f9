"""The PodResources client against the fake kubelet (real gRPC v1 on a unix socket): whatever
pods, containers and resources the node has, a pod gets exactly its own devices per resource,
sorted, through ``Get`` and through the ``List`` fallback alike."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from metacni.meta import podresources
from metacni.spec.errors import CNIError, Code
from metacni_testkit.podresources import FakePodResources

names = st.sampled_from(["web", "db", "cache", "job-1"])
namespaces = st.sampled_from(["default", "team-a"])
resources = st.sampled_from(["intel.com/sriov_vf", "intel.com/sriov_dpdk", "nvidia.com/gpu"])
device_ids = st.lists(st.from_regex(r"0000:[0-9a-f]{2}:0[0-9]\.[0-7]", fullmatch=True), max_size=3, unique=True)
containers = st.dictionaries(st.sampled_from(["app", "sidecar", "init"]), st.dictionaries(resources, device_ids),
                             max_size=3)
nodes = st.dictionaries(st.tuples(namespaces, names), containers, max_size=5)


@pytest.fixture(scope="module")
def kubelet() -> Iterator[FakePodResources]:
    root = Path(tempfile.mkdtemp(prefix="mcpr-"))
    try:
        with FakePodResources(str(root / "kubelet.sock")) as server:
            yield server
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _expected(pod: dict[str, dict[str, list[str]]]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for devices in pod.values():
        for resource, ids in devices.items():
            out.setdefault(resource, []).extend(ids)
    return {r: sorted(ids) for r, ids in out.items()}


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(node=nodes, use_get=st.booleans())
def test_each_pod_gets_exactly_its_devices(kubelet: FakePodResources, node: dict, use_get: bool) -> None:
    kubelet.clear()
    kubelet.get_supported = use_get
    for (ns, name), pod in node.items():
        kubelet.set_pod(ns, name, {})  # the kubelet knows every pod of the node, with devices or not
        for container, devices in pod.items():
            kubelet.set_pod(ns, name, devices, container=container)
    for (ns, name), pod in node.items():
        assert podresources.pod_devices(kubelet.socket_path, ns, name) == _expected(pod)
    if not use_get:  # List: a pod the kubelet does not know holds nothing
        assert podresources.pod_devices(kubelet.socket_path, "default", "unknown-pod") == {}


def test_socket_setting_must_be_an_absolute_path() -> None:
    assert podresources.socket_path({}) == podresources.DEFAULT_SOCKET
    assert podresources.socket_path({"podResourcesSocket": "/run/k.sock"}) == Path("/run/k.sock")
    for bad in ("relative.sock", 7):
        with pytest.raises(CNIError) as info:
            podresources.socket_path({"podResourcesSocket": bad})
        assert info.value.code == Code.INVALID_CONFIG and "podResourcesSocket" in info.value.details


def test_a_socket_nobody_listens_on(tmp_path: Path) -> None:
    stale = tmp_path / "kubelet.sock"
    import socket

    with socket.socket(socket.AF_UNIX) as s:  # bound, never listening: a kubelet that died
        s.bind(str(stale))
    with pytest.raises(CNIError) as info:
        podresources.pod_devices(str(stale), "default", "web", timeout=2)
    assert info.value.code == Code.TRY_AGAIN_LATER
    assert str(stale) in info.value.details and "default/web" in info.value.details
