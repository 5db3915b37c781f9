"""The fake API server, exercised through the real ``kubernetes`` client and a kubeconfig.

Every client is built from its own ``Configuration`` (no global config) so tests run in parallel
under xdist. Waiting is always on a condition with a deadline, never a bare sleep.
"""

from __future__ import annotations

import json
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, config, watch
from kubernetes.client.exceptions import ApiException

from metacni.sim.fakeapi import NAD_GROUP, NAD_PLURAL, NAD_VERSION, ApiError, FakeAPIServer
from metacni.sim.fakeapi.patch import json_patch, strategic_merge_patch
from metacni.sim.fakeapi.selectors import label_predicate

NETWORK_STATUS = "k8s.v1.cni.cncf.io/network-status"
DEADLINE = 10.0


def make_client(kubeconfig: Path, **overrides: Any) -> client.ApiClient:
    cfg = client.Configuration()
    config.load_kube_config(config_file=str(kubeconfig), client_configuration=cfg)
    for key, value in overrides.items():
        setattr(cfg, key, value)
    return client.ApiClient(cfg)


def wait_until(predicate: Callable[[], bool], timeout: float = DEADLINE, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.01)


def status_reason(exc: ApiException) -> str:
    return json.loads(exc.body)["reason"]


@pytest.fixture
def api() -> Iterator[FakeAPIServer]:
    with FakeAPIServer(bookmark_interval=0.1) as server:
        yield server


@pytest.fixture
def kubeconfig(api: FakeAPIServer, tmp_path: Path) -> Path:
    return api.write_kubeconfig(tmp_path / "kubeconfig")


@pytest.fixture
def kube(kubeconfig: Path) -> Iterator[client.ApiClient]:
    api_client = make_client(kubeconfig)
    yield api_client
    api_client.close()


@pytest.fixture
def core(kube: client.ApiClient) -> client.CoreV1Api:
    return client.CoreV1Api(kube)


@pytest.fixture
def custom(kube: client.ApiClient) -> client.CustomObjectsApi:
    return client.CustomObjectsApi(kube)


def pod_body(name: str, node: str | None = None, labels: dict[str, str] | None = None) -> client.V1Pod:
    return client.V1Pod(
        metadata=client.V1ObjectMeta(name=name, labels=labels),
        spec=client.V1PodSpec(node_name=node, containers=[client.V1Container(name="c", image="pause")]),
    )


class EventCollector:
    """Runs ``Watch().stream`` in a thread and hands events over through a queue."""

    def __init__(self, func: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        self.watch = watch.Watch()
        self.events: queue.Queue[dict[str, Any]] = queue.Queue()
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, args=(func, args, kwargs), daemon=True)
        self.thread.start()

    def _run(self, func: Callable[..., Any], args: Any, kwargs: Any) -> None:
        try:
            for event in self.watch.stream(func, *args, **kwargs):
                self.events.put(event)
        except BaseException as exc:  # noqa: BLE001 - reported to the test
            self.error = exc

    def next(self, timeout: float = DEADLINE) -> tuple[str, dict[str, Any]]:
        event = self.events.get(timeout=timeout)
        return event["type"], event["raw_object"]

    def next_non_bookmark(self, timeout: float = DEADLINE) -> tuple[str, dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while True:
            kind, obj = self.next(max(0.01, deadline - time.monotonic()))
            if kind != "BOOKMARK":
                return kind, obj

    def stop(self) -> None:
        self.watch.stop()


# -- discovery ----------------------------------------------------------------------------


def test_discovery_endpoints(kube: client.ApiClient) -> None:
    assert client.VersionApi(kube).get_code().git_version.startswith("v1.")
    assert client.CoreApi(kube).get_api_versions().versions == ["v1"]
    groups = client.ApisApi(kube).get_api_versions().groups
    assert [g.name for g in groups] == [NAD_GROUP]
    names = {r.name for r in client.CoreV1Api(kube).get_api_resources().resources}
    assert {"pods", "pods/status", "nodes", "nodes/status", "namespaces"} <= names
    nad = client.CustomObjectsApi(kube).get_api_resources(NAD_GROUP, NAD_VERSION).resources
    assert [(r.name, r.kind, r.namespaced) for r in nad] == [
        (NAD_PLURAL, "NetworkAttachmentDefinition", True)]


def test_dynamic_client_discovers_what_metacni_uses(kube: client.ApiClient, tmp_path: Path) -> None:
    """The ``kubernetes`` dynamic client's discovery finds every kind metacni reads and writes,
    with the real documents' shapes (APIResourceList entries with kind, verbs, namespaced)."""
    from kubernetes.dynamic import DynamicClient

    dyn = DynamicClient(kube, cache_file=str(tmp_path / "discovery.json"))
    pods = dyn.resources.get(prefix="api", api_version="v1", kind="Pod")
    assert (pods.name, pods.namespaced, pods.path(name="p", namespace="ns")) == (
        "pods", True, "/api/v1/namespaces/ns/pods/p")
    status = pods.subresources["status"]
    assert status.namespaced and set(status.verbs) >= {"get", "patch"}
    assert status.path(name="p", namespace="ns") == "/api/v1/namespaces/ns/pods/p/status"
    for kind, plural, namespaced in (("Node", "nodes", False), ("Event", "events", True),
                                     ("Namespace", "namespaces", False)):
        found = dyn.resources.get(prefix="api", api_version="v1", kind=kind)
        assert (found.name, found.namespaced) == (plural, namespaced)
    nads = dyn.resources.get(api_version=f"{NAD_GROUP}/{NAD_VERSION}", kind="NetworkAttachmentDefinition")
    assert nads.path(namespace="ns") == f"/apis/{NAD_GROUP}/{NAD_VERSION}/namespaces/ns/{NAD_PLURAL}"
    assert dyn.version["kubernetes"]["gitVersion"].startswith("v1.")


def test_unknown_path_is_404(api: FakeAPIServer, custom: client.CustomObjectsApi) -> None:
    with pytest.raises(ApiException) as info:
        custom.list_cluster_custom_object("example.com", "v1", "widgets")
    assert info.value.status == 404


# -- pods ---------------------------------------------------------------------------------


def test_pod_crud(api: FakeAPIServer, core: client.CoreV1Api) -> None:
    created = core.create_namespaced_pod("ns1", pod_body("web", node="n1"))
    assert created.metadata.namespace == "ns1"
    assert created.metadata.uid and created.metadata.creation_timestamp is not None
    assert int(created.metadata.resource_version) == api.resource_version
    assert created.status.phase == "Pending"

    got = core.read_namespaced_pod("web", "ns1")
    assert got.metadata.uid == created.metadata.uid
    api.add_pod("ns2", "db")
    assert [p.metadata.name for p in core.list_namespaced_pod("ns1").items] == ["web"]
    everything = core.list_pod_for_all_namespaces()
    assert sorted(p.metadata.name for p in everything.items) == ["db", "web"]
    assert int(everything.metadata.resource_version) == api.resource_version

    got.metadata.labels = {"app": "web"}
    replaced = core.replace_namespaced_pod("web", "ns1", got)
    assert replaced.metadata.labels == {"app": "web"}
    assert int(replaced.metadata.resource_version) > int(got.metadata.resource_version)

    deleted = core.delete_namespaced_pod("web", "ns1")
    assert deleted.metadata.uid == created.metadata.uid
    with pytest.raises(ApiException) as info:
        core.read_namespaced_pod("web", "ns1")
    assert info.value.status == 404 and status_reason(info.value) == "NotFound"
    assert api.get_pod("ns1", "web") is None


def test_create_existing_pod_is_409_already_exists(api: FakeAPIServer, core: client.CoreV1Api) -> None:
    api.add_pod("default", "dup")
    with pytest.raises(ApiException) as info:
        core.create_namespaced_pod("default", pod_body("dup"))
    assert info.value.status == 409
    assert status_reason(info.value) == "AlreadyExists"


def test_generate_name(core: client.CoreV1Api) -> None:
    body = pod_body("x")
    body.metadata = client.V1ObjectMeta(generate_name="worker-")
    created = core.create_namespaced_pod("default", body)
    assert created.metadata.name.startswith("worker-") and len(created.metadata.name) > len("worker-")


def test_update_with_stale_resource_version_is_409_conflict(api: FakeAPIServer,
                                                            core: client.CoreV1Api) -> None:
    api.add_pod("default", "p")
    stale = core.read_namespaced_pod("p", "default")
    api.patch_pod("default", "p", {"metadata": {"labels": {"touched": "yes"}}})
    stale.metadata.labels = {"mine": "yes"}
    with pytest.raises(ApiException) as info:
        core.replace_namespaced_pod("p", "default", stale)
    assert info.value.status == 409 and status_reason(info.value) == "Conflict"
    assert api.get_pod("default", "p")["metadata"]["labels"] == {"touched": "yes"}


def test_patch_precondition_resource_version(api: FakeAPIServer, core: client.CoreV1Api) -> None:
    api.add_pod("default", "p")
    with pytest.raises(ApiException) as info:
        core.patch_namespaced_pod("p", "default",
                                  {"metadata": {"resourceVersion": "1", "labels": {"a": "b"}}})
    assert info.value.status == 409


def test_patch_network_status_annotation(api: FakeAPIServer, core: client.CoreV1Api) -> None:
    api.add_pod("default", "p", node_name="n1", annotations={"keep": "me"})
    before = api.get_pod("default", "p")
    status = [{"name": "default/net1", "interface": "net1", "ips": ["10.1.0.5"], "default": False}]
    patched = core.patch_namespaced_pod(
        "p", "default", {"metadata": {"annotations": {NETWORK_STATUS: json.dumps(status)}}})

    assert json.loads(patched.metadata.annotations[NETWORK_STATUS]) == status
    assert patched.metadata.annotations["keep"] == "me"  # strategic merge keeps other keys
    stored = api.get_pod("default", "p")
    assert stored["metadata"]["annotations"][NETWORK_STATUS] == json.dumps(status)
    assert int(stored["metadata"]["resourceVersion"]) > int(before["metadata"]["resourceVersion"])


def test_merge_patch_null_removes_annotation(api: FakeAPIServer, core: client.CoreV1Api) -> None:
    api.add_pod("default", "p", annotations={"a": "1", "b": "2"})
    core.patch_namespaced_pod("p", "default", {"metadata": {"annotations": {"a": None}}},
                              _content_type="application/merge-patch+json")
    assert api.get_pod("default", "p")["metadata"]["annotations"] == {"b": "2"}


def test_json_patch_adds_annotation(api: FakeAPIServer, core: client.CoreV1Api) -> None:
    api.add_pod("default", "p", annotations={"a": "1"})
    ops = [{"op": "add", "path": "/metadata/annotations/k8s.v1.cni.cncf.io~1networks", "value": "net1"},
           {"op": "remove", "path": "/metadata/annotations/a"}]
    core.patch_namespaced_pod("p", "default", ops)
    assert api.get_pod("default", "p")["metadata"]["annotations"] == {"k8s.v1.cni.cncf.io/networks": "net1"}


def test_non_string_annotation_is_rejected_as_the_apiserver_does(api: FakeAPIServer,
                                                                 core: client.CoreV1Api) -> None:
    api.add_pod("default", "p")
    with pytest.raises(ApiException) as info:
        core.patch_namespaced_pod("p", "default", {"metadata": {"annotations": {NETWORK_STATUS: [{"a": 1}]}}})
    assert info.value.status == 400
    assert NETWORK_STATUS not in (api.get_pod("default", "p")["metadata"].get("annotations") or {})


def test_noop_patch_keeps_resource_version(api: FakeAPIServer, core: client.CoreV1Api) -> None:
    api.add_pod("default", "p", labels={"a": "b"})
    rv = api.resource_version
    again = core.patch_namespaced_pod("p", "default", {"metadata": {"labels": {"a": "b"}}})
    assert again.metadata.resource_version == str(rv) and api.resource_version == rv


def test_pod_status_subresource(api: FakeAPIServer, core: client.CoreV1Api) -> None:
    api.add_pod("default", "p", node_name="n1")
    core.patch_namespaced_pod_status("p", "default", {"status": {"phase": "Running", "podIP": "10.0.0.7"}})
    assert core.read_namespaced_pod_status("p", "default").status.pod_ip == "10.0.0.7"
    # Status sent to the main resource is ignored, and spec sent to status is ignored.
    core.patch_namespaced_pod("p", "default", {"status": {"podIP": "10.9.9.9"}})
    core.patch_namespaced_pod_status("p", "default", {"spec": {"nodeName": "elsewhere"}})
    pod = api.get_pod("default", "p")
    assert pod["status"]["podIP"] == "10.0.0.7" and pod["spec"]["nodeName"] == "n1"
    current = core.read_namespaced_pod("p", "default")
    current.status.phase = "Succeeded"
    assert core.replace_namespaced_pod_status("p", "default", current).status.phase == "Succeeded"


def test_create_discards_client_supplied_pod_status(core: client.CoreV1Api) -> None:
    body = pod_body("p")
    body.status = client.V1PodStatus(phase="Running", pod_ip="10.0.0.1")
    created = core.create_namespaced_pod("default", body)
    assert created.status.phase == "Pending" and created.status.pod_ip is None


def test_pod_binding_schedules_once(api: FakeAPIServer, core: client.CoreV1Api) -> None:
    api.add_pod("default", "p")
    binding = client.V1Binding(metadata=client.V1ObjectMeta(name="p"),
                               target=client.V1ObjectReference(kind="Node", name="n1"))
    # The apiserver answers a Status the client cannot turn into V1Binding, hence raw responses.
    resp = core.create_namespaced_pod_binding("p", "default", binding, _preload_content=False)
    assert resp.status == 201
    assert api.get_pod("default", "p")["spec"]["nodeName"] == "n1"
    with pytest.raises(ApiException) as info:
        core.create_namespaced_pod_binding("p", "default", binding, _preload_content=False)
    assert info.value.status == 409
    assert api.counts[("create", "pods/binding")] == 2


def test_delete_with_wrong_uid_precondition_is_conflict(api: FakeAPIServer, core: client.CoreV1Api) -> None:
    api.add_pod("default", "p", uid="1111")
    body = client.V1DeleteOptions(preconditions=client.V1Preconditions(uid="2222"))
    with pytest.raises(ApiException) as info:
        core.delete_namespaced_pod("p", "default", body=body)
    assert info.value.status == 409
    assert api.get_pod("default", "p")["metadata"]["uid"] == "1111"


def test_patch_with_another_uid_is_refused_and_put_is_a_conflict(api: FakeAPIServer, core: client.CoreV1Api) -> None:
    """A UID in a patch is a precondition (kubelet's status patches rely on it): the apiserver
    refuses to change it (422), on the status subresource too; a PUT with another UID is 409."""
    api.add_pod("default", "p", uid="1111")
    for patch in (core.patch_namespaced_pod_status, core.patch_namespaced_pod):
        with pytest.raises(ApiException) as info:
            patch("p", "default", {"metadata": {"uid": "2222", "annotations": {"a": "x"}}})
        assert info.value.status == 422 and "metadata.uid" in info.value.body
    assert "a" not in (api.get_pod("default", "p")["metadata"].get("annotations") or {})
    core.patch_namespaced_pod_status("p", "default", {"metadata": {"uid": "1111", "annotations": {"a": "y"}}})
    assert api.get_pod("default", "p")["metadata"]["annotations"]["a"] == "y"
    pod = api.get_pod("default", "p")
    pod["metadata"]["uid"] = "2222"
    with pytest.raises(ApiException) as info:
        core.replace_namespaced_pod("p", "default", pod)
    assert info.value.status == 409


def test_delete_collection_with_label_selector(api: FakeAPIServer, core: client.CoreV1Api) -> None:
    api.add_pod("default", "a", labels={"app": "x"})
    api.add_pod("default", "b", labels={"app": "x"})
    api.add_pod("default", "c", labels={"app": "y"})
    api.add_pod("other", "d", labels={"app": "x"})
    # Like the apiserver, the answer is the list of deleted pods (the client types it V1Status).
    resp = core.delete_collection_namespaced_pod("default", label_selector="app=x", _preload_content=False)
    gone = json.loads(resp.data)
    assert gone["kind"] == "PodList"
    assert sorted(i["metadata"]["name"] for i in gone["items"]) == ["a", "b"]
    assert sorted(p["metadata"]["name"] for p in api.list_objects("pods")) == ["c", "d"]


# -- selectors ----------------------------------------------------------------------------


def test_field_selector_on_node_name(api: FakeAPIServer, core: client.CoreV1Api) -> None:
    api.add_pod("a", "on-n1", node_name="n1")
    api.add_pod("b", "also-n1", node_name="n1")
    api.add_pod("a", "on-n2", node_name="n2")
    api.add_pod("a", "unscheduled")
    mine = core.list_pod_for_all_namespaces(field_selector="spec.nodeName=n1")
    assert sorted(p.metadata.name for p in mine.items) == ["also-n1", "on-n1"]
    in_a = core.list_namespaced_pod("a", field_selector="spec.nodeName=n1")
    assert [p.metadata.name for p in in_a.items] == ["on-n1"]
    pending = core.list_pod_for_all_namespaces(field_selector="spec.nodeName=")
    assert [p.metadata.name for p in pending.items] == ["unscheduled"]
    others = core.list_namespaced_pod("a", field_selector="spec.nodeName!=n1,metadata.name!=unscheduled")
    assert [p.metadata.name for p in others.items] == ["on-n2"]


def test_unsupported_field_label_is_400(core: client.CoreV1Api) -> None:
    with pytest.raises(ApiException) as info:
        core.list_pod_for_all_namespaces(field_selector="spec.containers=x")
    assert info.value.status == 400


def test_label_selector(api: FakeAPIServer, core: client.CoreV1Api) -> None:
    api.add_pod("default", "a", labels={"app": "web", "tier": "front"})
    api.add_pod("default", "b", labels={"app": "db"})
    api.add_pod("default", "c")

    def names(selector: str) -> list[str]:
        pods = core.list_namespaced_pod("default", label_selector=selector).items
        return sorted(p.metadata.name for p in pods)

    assert names("app=web") == ["a"]
    assert names("app==db") == ["b"]
    assert names("app!=web") == ["b", "c"]
    assert names("app in (web, db)") == ["a", "b"]
    assert names("app notin (web)") == ["b", "c"]
    assert names("tier") == ["a"]
    assert names("!tier,app") == ["b"]


def test_label_selector_parser_units() -> None:
    match = label_predicate("env in (prod,stage),!canary,team=net")
    assert match({"metadata": {"labels": {"env": "prod", "team": "net"}}})
    assert not match({"metadata": {"labels": {"env": "prod", "team": "net", "canary": "1"}}})
    assert not match({"metadata": {"labels": {"env": "dev", "team": "net"}}})


# -- nodes --------------------------------------------------------------------------------


def test_node_crud_and_patches(api: FakeAPIServer, core: client.CoreV1Api) -> None:
    core.create_node(client.V1Node(metadata=client.V1ObjectMeta(name="n1")))
    cidrs = ["10.244.1.0/24", "fd00:1::/64"]
    core.patch_node("n1", {"spec": {"podCIDR": cidrs[0], "podCIDRs": cidrs}})
    core.patch_node_status("n1", {"status": {"addresses": [{"type": "InternalIP", "address": "192.0.2.1"}]}})
    node = core.read_node("n1")
    assert node.spec.pod_cidr == "10.244.1.0/24"
    assert node.spec.pod_cidrs == ["10.244.1.0/24", "fd00:1::/64"]
    assert [(a.type, a.address) for a in node.status.addresses] == [("InternalIP", "192.0.2.1")]

    # Strategic merge merges addresses by type: a Hostname entry is added, InternalIP replaced.
    core.patch_node_status("n1", {"status": {"addresses": [{"type": "Hostname", "address": "n1"},
                                                           {"type": "InternalIP", "address": "192.0.2.9"}]}})
    assert {(a.type, a.address) for a in core.read_node("n1").status.addresses} == {
        ("InternalIP", "192.0.2.9"), ("Hostname", "n1")}

    api.add_node("n2", ["10.244.2.0/24"], "192.0.2.2")
    assert [n.metadata.name for n in core.list_node().items] == ["n1", "n2"]
    assert [n.metadata.name for n in core.list_node(field_selector="metadata.name=n2").items] == ["n2"]
    status = core.delete_node("n1")  # client 37 returns the Status as a plain dict
    assert status["kind"] == "Status" and status["status"] == "Success"
    with pytest.raises(ApiException) as info:
        core.read_node("n1")
    assert info.value.status == 404
    assert api.get_node("n1") is None


def test_add_node_helper_shape(api: FakeAPIServer, core: client.CoreV1Api) -> None:
    api.add_node("n1", "10.244.3.0/24", "192.0.2.3")
    node = core.read_node("n1")
    assert node.spec.pod_cidr == "10.244.3.0/24" and node.spec.pod_cidrs == ["10.244.3.0/24"]
    internal = [a.address for a in node.status.addresses if a.type == "InternalIP"]
    assert internal == ["192.0.2.3"]
    assert node.metadata.labels["kubernetes.io/hostname"] == "n1"


# -- network attachment definitions ------------------------------------------------------


def nad_body(name: str, config_text: str) -> dict[str, Any]:
    return {"apiVersion": f"{NAD_GROUP}/{NAD_VERSION}", "kind": "NetworkAttachmentDefinition",
            "metadata": {"name": name}, "spec": {"config": config_text}}


def test_nad_crud(api: FakeAPIServer, custom: client.CustomObjectsApi) -> None:
    conf = json.dumps({"cniVersion": "1.0.0", "name": "net1", "type": "bridge"})
    created = custom.create_namespaced_custom_object(NAD_GROUP, NAD_VERSION, "ns1", NAD_PLURAL,
                                                     nad_body("net1", conf))
    assert created["metadata"]["namespace"] == "ns1" and created["metadata"]["uid"]
    got = custom.get_namespaced_custom_object(NAD_GROUP, NAD_VERSION, "ns1", NAD_PLURAL, "net1")
    assert json.loads(got["spec"]["config"])["type"] == "bridge"

    api.add_nad("ns2", "net2", {"cniVersion": "1.0.0", "name": "net2", "type": "macvlan"})
    per_ns = custom.list_namespaced_custom_object(NAD_GROUP, NAD_VERSION, "ns1", NAD_PLURAL)
    assert [i["metadata"]["name"] for i in per_ns["items"]] == ["net1"]
    everything = custom.list_cluster_custom_object(NAD_GROUP, NAD_VERSION, NAD_PLURAL)
    assert sorted(i["metadata"]["name"] for i in everything["items"]) == ["net1", "net2"]
    assert everything["kind"] == "NetworkAttachmentDefinitionList"
    assert all(i["kind"] == "NetworkAttachmentDefinition" for i in everything["items"])

    got["spec"]["config"] = conf.replace("bridge", "ipvlan")
    updated = custom.replace_namespaced_custom_object(NAD_GROUP, NAD_VERSION, "ns1", NAD_PLURAL, "net1", got)
    assert "ipvlan" in updated["spec"]["config"]
    with pytest.raises(ApiException) as info:  # `got` still carries the old resourceVersion
        custom.replace_namespaced_custom_object(NAD_GROUP, NAD_VERSION, "ns1", NAD_PLURAL, "net1", got)
    assert info.value.status == 409 and status_reason(info.value) == "Conflict"

    custom.delete_namespaced_custom_object(NAD_GROUP, NAD_VERSION, "ns1", NAD_PLURAL, "net1")
    with pytest.raises(ApiException) as info:
        custom.get_namespaced_custom_object(NAD_GROUP, NAD_VERSION, "ns1", NAD_PLURAL, "net1")
    assert info.value.status == 404
    assert api.get_nad("ns1", "net1") is None and api.get_nad("ns2", "net2") is not None


def test_nad_config_must_be_a_string(custom: client.CustomObjectsApi) -> None:
    body = nad_body("bad", "x")
    body["spec"]["config"] = {"type": "bridge"}
    with pytest.raises(ApiException) as info:
        custom.create_namespaced_custom_object(NAD_GROUP, NAD_VERSION, "default", NAD_PLURAL, body)
    assert info.value.status == 422


# -- watch --------------------------------------------------------------------------------


def test_watch_pods_on_node_with_field_selector(api: FakeAPIServer, core: client.CoreV1Api) -> None:
    listed = core.list_pod_for_all_namespaces(field_selector="spec.nodeName=n1")
    events = EventCollector(core.list_pod_for_all_namespaces, field_selector="spec.nodeName=n1",
                            resource_version=listed.metadata.resource_version, timeout_seconds=30)
    try:
        api.add_pod("default", "other", node_name="n2")
        api.add_pod("default", "mine", node_name="n1")
        api.patch_pod("default", "mine", {"metadata": {"annotations": {NETWORK_STATUS: "[]"}}})
        api.delete_pod("default", "other")
        api.delete_pod("default", "mine")
        seen = [events.next() for _ in range(3)]
        assert [(kind, obj["metadata"]["name"]) for kind, obj in seen] == [
            ("ADDED", "mine"), ("MODIFIED", "mine"), ("DELETED", "mine")]
        assert seen[1][1]["metadata"]["annotations"] == {NETWORK_STATUS: "[]"}
        assert seen[0][1]["kind"] == "Pod"
        rvs = [int(obj["metadata"]["resourceVersion"]) for _, obj in seen]
        assert rvs == sorted(rvs) and len(set(rvs)) == 3
        assert events.events.empty()
    finally:
        events.stop()


def test_watch_selector_transitions_are_added_and_deleted(api: FakeAPIServer, core: client.CoreV1Api) -> None:
    api.add_pod("default", "p")
    rv = str(api.resource_version)
    events = EventCollector(core.list_namespaced_pod, "default", field_selector="spec.nodeName=n1",
                            resource_version=rv, timeout_seconds=30)
    try:
        api.patch_pod("default", "p", {"spec": {"nodeName": "n1"}})  # scheduled onto n1: enters
        api.patch_pod("default", "p", {"spec": {"nodeName": "n2"}})  # moved away: leaves
        assert [(k, o["spec"].get("nodeName")) for k, o in (events.next(), events.next())] == [
            ("ADDED", "n1"), ("DELETED", "n1")]
    finally:
        events.stop()


def test_watch_without_resource_version_starts_with_current_state(api: FakeAPIServer,
                                                                  core: client.CoreV1Api) -> None:
    api.add_node("n1")
    api.add_node("n2")
    events = EventCollector(core.list_node, timeout_seconds=30)
    try:
        assert [events.next() [1]["metadata"]["name"] for _ in range(2)] == ["n1", "n2"]
        api.delete_node("n1")
        kind, obj = events.next()
        assert (kind, obj["metadata"]["name"]) == ("DELETED", "n1")
    finally:
        events.stop()


def test_watch_resumes_from_resource_version(api: FakeAPIServer, core: client.CoreV1Api) -> None:
    api.add_pod("default", "before")
    resume_at = str(api.resource_version)
    api.add_pod("default", "after-1")
    api.patch_pod("default", "before", {"metadata": {"labels": {"x": "y"}}})
    api.delete_pod("default", "after-1")
    stream = watch.Watch().stream(core.list_namespaced_pod, "default", resource_version=resume_at,
                                  timeout_seconds=1)
    seen = [(e["type"], e["object"].metadata.name) for e in stream]
    assert seen == [("ADDED", "after-1"), ("MODIFIED", "before"), ("DELETED", "after-1")]


def test_watch_from_compacted_resource_version_is_410_gone(api: FakeAPIServer,
                                                           core: client.CoreV1Api) -> None:
    api.add_pod("default", "p")
    old = str(api.resource_version)
    api.patch_pod("default", "p", {"metadata": {"labels": {"v": "2"}}})
    api.compact()
    with pytest.raises(ApiException) as info:
        list(watch.Watch().stream(core.list_namespaced_pod, "default", resource_version=old,
                                  timeout_seconds=5))
    assert info.value.status == 410
    assert "Expired" in str(info.value.reason)
    # The current resourceVersion is still fine.
    fresh = watch.Watch().stream(core.list_namespaced_pod, "default",
                                 resource_version=str(api.resource_version), timeout_seconds=1)
    assert list(fresh) == []


def test_event_history_bound_expires_old_resource_versions(core: client.CoreV1Api, tmp_path: Path) -> None:
    with FakeAPIServer(event_history=3) as small:
        small.add_pod("default", "p0")
        start = str(small.resource_version)
        for i in range(1, 5):
            small.add_pod("default", f"p{i}")
        cfg_client = make_client(small.write_kubeconfig(tmp_path / "small"))
        small_core = client.CoreV1Api(cfg_client)
        with pytest.raises(ApiException) as info:
            list(watch.Watch().stream(small_core.list_namespaced_pod, "default", resource_version=start,
                                      timeout_seconds=5))
        assert info.value.status == 410
        recent = str(small.resource_version - 2)
        names = [e["object"].metadata.name for e in watch.Watch().stream(
            small_core.list_namespaced_pod, "default", resource_version=recent, timeout_seconds=1)]
        assert names == ["p3", "p4"]
        cfg_client.close()


def test_watch_bookmarks(api: FakeAPIServer, core: client.CoreV1Api) -> None:
    api.add_node("n1")
    events = EventCollector(core.list_node, resource_version=str(api.resource_version),
                            allow_watch_bookmarks=True, timeout_seconds=30)
    try:
        kind, obj = events.next()
        assert kind == "BOOKMARK"
        assert obj["metadata"]["resourceVersion"] == str(api.resource_version)
        api.add_pod("default", "bumps-the-global-rv")
        wait_until(lambda: events.next()[1]["metadata"]["resourceVersion"] == str(api.resource_version),
                   what="a bookmark carrying the newer resourceVersion")
    finally:
        events.stop()


def test_watch_nads_with_custom_objects_api(api: FakeAPIServer, custom: client.CustomObjectsApi) -> None:
    rv = str(api.resource_version)
    events = EventCollector(custom.list_cluster_custom_object, NAD_GROUP, NAD_VERSION, NAD_PLURAL,
                            resource_version=rv, timeout_seconds=30)
    try:
        api.add_nad("ns1", "net1", '{"type": "bridge"}')
        api.update_nad("ns1", "net1", '{"type": "macvlan"}')
        api.delete_nad("ns1", "net1")
        seen = [events.next() for _ in range(3)]
        assert [k for k, _ in seen] == ["ADDED", "MODIFIED", "DELETED"]
        assert seen[1][1]["spec"]["config"] == '{"type": "macvlan"}'
        assert seen[0][1]["kind"] == "NetworkAttachmentDefinition"
    finally:
        events.stop()


def test_watch_per_namespace_nads(api: FakeAPIServer, custom: client.CustomObjectsApi) -> None:
    stream = EventCollector(custom.list_namespaced_custom_object, NAD_GROUP, NAD_VERSION, "ns1", NAD_PLURAL,
                            resource_version=str(api.resource_version), timeout_seconds=30)
    try:
        api.add_nad("ns2", "elsewhere", "{}")
        api.add_nad("ns1", "here", "{}")
        kind, obj = stream.next()
        assert (kind, obj["metadata"]["namespace"], obj["metadata"]["name"]) == ("ADDED", "ns1", "here")
    finally:
        stream.stop()


def test_stop_ends_open_watches_promptly(api: FakeAPIServer, core: client.CoreV1Api) -> None:
    events = EventCollector(core.list_node, resource_version=str(api.resource_version), timeout_seconds=300)
    assert api.wait_for_watches(1, "nodes", timeout=DEADLINE)
    started = time.monotonic()
    api.stop()
    events.thread.join(timeout=5)
    assert not events.thread.is_alive()
    assert time.monotonic() - started < 3.0
    assert api.active_watches() == 0


def test_client_hangup_releases_the_watch(api: FakeAPIServer, core: client.CoreV1Api) -> None:
    events = EventCollector(core.list_node, resource_version=str(api.resource_version), timeout_seconds=300)
    assert api.wait_for_watches(1, "nodes", timeout=DEADLINE)
    api.add_node("n1")
    assert events.next()[0] == "ADDED"
    events.stop()  # the client shuts its socket; the server must notice without any new event
    wait_until(lambda: api.active_watches("nodes") == 0, what="the server to drop the watch")


def test_informer_list_watch_loop(api: FakeAPIServer, kubeconfig: Path) -> None:
    """An informer-style loop (list, watch from the list RV, relist on 410) converges on the
    server's state across watch restarts and a compaction."""
    cache: dict[str, str] = {}
    cache_lock = threading.Lock()
    stop = threading.Event()
    failures: list[BaseException] = []
    informer_client = make_client(kubeconfig)
    core = client.CoreV1Api(informer_client)

    def run() -> None:
        try:
            while not stop.is_set():
                listed = core.list_pod_for_all_namespaces(field_selector="spec.nodeName=n1")
                with cache_lock:
                    cache.clear()
                    cache.update({p.metadata.name: p.metadata.resource_version for p in listed.items})
                rv = listed.metadata.resource_version
                try:
                    while not stop.is_set():
                        w = watch.Watch()
                        for event in w.stream(core.list_pod_for_all_namespaces,
                                              field_selector="spec.nodeName=n1",
                                              resource_version=rv, timeout_seconds=1):
                            meta = event["raw_object"]["metadata"]
                            rv = meta["resourceVersion"]
                            with cache_lock:
                                if event["type"] == "DELETED":
                                    cache.pop(meta["name"], None)
                                elif event["type"] in ("ADDED", "MODIFIED"):
                                    cache[meta["name"]] = rv
                            if stop.is_set():
                                w.stop()
                except ApiException as exc:
                    if exc.status != 410:
                        raise
        except BaseException as exc:  # noqa: BLE001
            failures.append(exc)

    def server_view() -> dict[str, str]:
        return {p["metadata"]["name"]: p["metadata"]["resourceVersion"]
                for p in api.list_objects("pods", field_selector="spec.nodeName=n1")}

    def converged() -> bool:
        assert not failures, failures
        with cache_lock:
            return cache == server_view()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        for i in range(5):
            api.add_pod("default", f"p{i}", node_name="n1")
        api.add_pod("default", "not-mine", node_name="n2")
        wait_until(converged, what="initial convergence")
        api.delete_pod("default", "p0")
        api.patch_pod("default", "p1", {"metadata": {"labels": {"x": "1"}}})
        wait_until(converged, what="convergence after delete/patch")

        # Bump the global RV without touching watched pods (no bookmarks here to carry it), then
        # compact: the next watch restart from the informer's last RV gets 410 and must relist.
        lists_before = api.count("list", "pods")
        api.add_node("unrelated")
        api.compact()
        wait_until(lambda: api.count("list", "pods") > lists_before, what="a relist after 410")
        api.add_pod("default", "after-compaction", node_name="n1")
        wait_until(converged, what="convergence after relist")
        assert "after-compaction" in cache
    finally:
        stop.set()
        thread.join(timeout=5)
        informer_client.close()
    assert not failures, failures


# -- counters -----------------------------------------------------------------------------


def test_request_counters(api: FakeAPIServer, core: client.CoreV1Api) -> None:
    api.add_pod("default", "seeded")  # direct helpers are not requests
    assert api.counts == {}
    core.create_namespaced_pod("default", pod_body("p"))
    core.read_namespaced_pod("p", "default")
    core.read_namespaced_pod("p", "default")
    core.list_namespaced_pod("default")
    core.patch_namespaced_pod("p", "default", {"metadata": {"labels": {"a": "b"}}})
    core.replace_namespaced_pod("p", "default", core.read_namespaced_pod("p", "default"))
    core.patch_namespaced_pod_status("p", "default", {"status": {"phase": "Running"}})
    list(watch.Watch().stream(core.list_namespaced_pod, "default", resource_version=str(api.resource_version),
                              timeout_seconds=1))
    core.delete_namespaced_pod("p", "default")
    core.list_node()

    counts = api.counts
    assert counts[("create", "pods")] == 1
    assert counts[("get", "pods")] == 3
    assert counts[("list", "pods")] == 1
    assert counts[("watch", "pods")] == 1
    assert counts[("patch", "pods")] == 1
    assert counts[("update", "pods")] == 1
    assert counts[("patch", "pods/status")] == 1
    assert counts[("delete", "pods")] == 1
    assert counts[("list", "nodes")] == 1
    assert counts[("get", "network-attachment-definitions")] == 0
    assert api.reads("pods") == 5
    api.reset_counts()
    assert api.counts == {} and api.reads("pods") == 0


# -- fault injection ----------------------------------------------------------------------


def test_injected_error_status(api: FakeAPIServer, core: client.CoreV1Api) -> None:
    api.add_pod("default", "p")
    with api.fault(503, verb="get", resource="pods", times=1) as fault:
        with pytest.raises(ApiException) as info:
            core.read_namespaced_pod("p", "default")
        assert info.value.status == 503
        assert status_reason(info.value) == "ServiceUnavailable"
        assert core.read_namespaced_pod("p", "default").metadata.name == "p"  # times=1 is used up
        assert fault.hits == 1
    with api.fault(500):
        with pytest.raises(ApiException) as info:
            core.list_node()
        assert info.value.status == 500
    assert core.list_node().items == []


def test_retry_after_is_retried_by_urllib3(api: FakeAPIServer, core: client.CoreV1Api) -> None:
    """With Retry-After, urllib3 under the client retries a 503 GET by itself: the fault is hit
    but the caller never sees it. Code that must see the error should use faults without it."""
    api.add_pod("default", "p")
    with api.fault(503, verb="get", resource="pods", times=1, retry_after=0) as fault:
        assert core.read_namespaced_pod("p", "default").metadata.name == "p"
    assert fault.hits == 1
    assert api.counts[("get", "pods")] == 2


def test_injected_fault_only_hits_its_resource(api: FakeAPIServer, core: client.CoreV1Api,
                                               custom: client.CustomObjectsApi) -> None:
    api.add_nad("default", "net1", "{}")
    with api.fault(500, resource=NAD_PLURAL):
        assert core.list_node().items == []
        with pytest.raises(ApiException) as info:
            custom.get_namespaced_custom_object(NAD_GROUP, NAD_VERSION, "default", NAD_PLURAL, "net1")
        assert info.value.status == 500


def test_injected_delay_makes_client_time_out(api: FakeAPIServer, kubeconfig: Path) -> None:
    api.add_node("n1")
    no_retry = make_client(kubeconfig, retries=0)
    core = client.CoreV1Api(no_retry)
    try:
        with api.fault(delay=5.0, verb="get", resource="nodes"):
            started = time.monotonic()
            with pytest.raises(Exception) as info:  # urllib3 timeout: not an ApiException
                core.read_node("n1", _request_timeout=0.3)
            assert not isinstance(info.value, ApiException)
            assert time.monotonic() - started < 3.0
        with api.fault(delay=0.2, verb="get", resource="nodes"):
            assert core.read_node("n1", _request_timeout=5).metadata.name == "n1"
    finally:
        no_retry.close()


def test_dropped_connection(api: FakeAPIServer, kubeconfig: Path) -> None:
    no_retry = make_client(kubeconfig, retries=0)
    core = client.CoreV1Api(no_retry)
    try:
        with api.fault(drop=True, verb="create", resource="pods", times=1):
            with pytest.raises(Exception) as info:
                core.create_namespaced_pod("default", pod_body("p"))
            assert not isinstance(info.value, ApiException)
        assert api.get_pod("default", "p") is None
        assert core.create_namespaced_pod("default", pod_body("p")).metadata.name == "p"
    finally:
        no_retry.close()


def test_stop_makes_server_unreachable_and_start_restores_it(api: FakeAPIServer, kubeconfig: Path) -> None:
    api.add_node("n1")
    no_retry = make_client(kubeconfig, retries=0)
    core = client.CoreV1Api(no_retry)
    try:
        assert core.read_node("n1").metadata.name == "n1"  # leaves a pooled keep-alive connection
        port = api.port
        api.stop()
        with pytest.raises(Exception) as info:
            core.read_node("n1", _request_timeout=2)
        assert not isinstance(info.value, ApiException)
        api.start()
        assert api.port == port
        assert core.read_node("n1").metadata.name == "n1"  # state survived the outage
    finally:
        no_retry.close()


def test_auth_required(tmp_path: Path) -> None:
    with FakeAPIServer(require_auth=True) as secured:
        good = make_client(secured.write_kubeconfig(tmp_path / "kc"))
        wrong = tmp_path / "wrong"
        wrong.write_text((tmp_path / "kc").read_text().replace(secured.token, "not-the-token"))
        bad = make_client(wrong)
        try:
            assert client.CoreV1Api(good).list_node().items == []
            with pytest.raises(ApiException) as info:
                client.CoreV1Api(bad).list_node()
            assert info.value.status == 401
        finally:
            good.close()
            bad.close()


# -- direct helpers and concurrency --------------------------------------------------------


def test_helpers_emit_watch_events_for_nodes(api: FakeAPIServer, core: client.CoreV1Api) -> None:
    events = EventCollector(core.list_node, resource_version=str(api.resource_version), timeout_seconds=30)
    try:
        api.add_node("n1", "10.244.0.0/24", "192.0.2.10")
        api.patch_node("n1", {"spec": {"unschedulable": True}})
        api.delete_node("n1")
        seen = [events.next() for _ in range(3)]
        assert [k for k, _ in seen] == ["ADDED", "MODIFIED", "DELETED"]
        assert seen[1][1]["spec"]["unschedulable"] is True
    finally:
        events.stop()


def test_helper_errors_are_api_errors(api: FakeAPIServer) -> None:
    api.add_pod("default", "p")
    with pytest.raises(ApiError) as info:
        api.add_pod("default", "p")
    assert info.value.code == 409
    with pytest.raises(ApiError) as info:
        api.delete_pod("default", "missing")
    assert info.value.code == 404


def test_concurrent_writers_get_unique_resource_versions(api: FakeAPIServer, kubeconfig: Path) -> None:
    results: list[str] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def writer(idx: int) -> None:
        writer_client = make_client(kubeconfig)
        core = client.CoreV1Api(writer_client)
        try:
            for j in range(10):
                pod = core.create_namespaced_pod("default", pod_body(f"w{idx}-{j}", node="n1"))
                patched = core.patch_namespaced_pod(pod.metadata.name, "default",
                                                    {"metadata": {"annotations": {NETWORK_STATUS: str(j)}}})
                with lock:
                    results.extend([pod.metadata.resource_version, patched.metadata.resource_version])
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)
        finally:
            writer_client.close()

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors, errors
    assert len(results) == 120 and len(set(results)) == 120
    assert len(api.list_objects("pods", field_selector="spec.nodeName=n1")) == 60
    assert api.counts[("create", "pods")] == 60 and api.counts[("patch", "pods")] == 60


# -- patch engine units -------------------------------------------------------------------


def test_strategic_merge_patch_units() -> None:
    pod = {"spec": {"containers": [{"name": "a", "image": "1"}, {"name": "b", "image": "1"}]},
           "metadata": {"finalizers": ["x"]}}
    patched = strategic_merge_patch(pod, {"spec": {"containers": [{"name": "b", "image": "2"},
                                                                  {"name": "a", "$patch": "delete"}]},
                                          "metadata": {"finalizers": ["y"]}})
    assert patched == {"spec": {"containers": [{"name": "b", "image": "2"}]},
                       "metadata": {"finalizers": ["x", "y"]}}
    assert pod["spec"]["containers"][1]["image"] == "1"  # input untouched


def test_json_patch_units() -> None:
    doc = {"a": [1, 2], "b": {"c": 1}}
    out = json_patch(doc, [{"op": "add", "path": "/a/-", "value": 3},
                           {"op": "replace", "path": "/b/c", "value": 2},
                           {"op": "copy", "from": "/b", "path": "/d"},
                           {"op": "test", "path": "/a/0", "value": 1}])
    assert out == {"a": [1, 2, 3], "b": {"c": 2}, "d": {"c": 2}}
    with pytest.raises(ApiError):
        json_patch(doc, [{"op": "test", "path": "/a/0", "value": 9}])


# -- command line -------------------------------------------------------------------------


def test_command_line_mode(tmp_path: Path) -> None:
    kubeconfig = tmp_path / "kc"
    proc = subprocess.Popen([sys.executable, "-m", "metacni.sim.fakeapi", "--port", "0", "--kubeconfig",
                             str(kubeconfig), "--node", "n1,10.244.7.0/24,192.0.2.7"],
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("listening on http://127.0.0.1:"), line
        cli_client = make_client(kubeconfig)
        node = client.CoreV1Api(cli_client).read_node("n1")
        assert node.spec.pod_cidr == "10.244.7.0/24"
        cli_client.close()
    finally:
        proc.terminate()
        assert proc.wait(timeout=10) == 0
