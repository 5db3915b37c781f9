"""Dynamic attachments (issue #19): a running pod's interfaces follow its networks annotation,
through a real daemon (``--dynamic-networks``) fed by the fake API's watch; and Multus'
``POST /delegate`` replayed with the multus-dynamic-networks-controller's request shape."""

from __future__ import annotations

import base64
import json
import socket
import time
from collections.abc import Callable
from typing import Any

import pytest

from metacni.kernel.netns import enter
from metacni.meta import delegate_cache, hotplug
from metacni.sim import traffic
from metacni_testkit.daemon import start_daemon
from metacni_testkit.firewall_testbed import ruleset
from metacni_testkit.nodes import CNI_PATH, NETWORKS, Node, Pod
from metacni_testkit.unixhttp import connect as unix_connect
from metacni_testkit.unixhttp import read_answer
from tests.daemon.test_daemon_meta import DaemonMetaNode

WAIT = 30.0


def wait_for(what: str, check: Callable[[], Any], timeout: float = WAIT) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def daemon_node(make_node: Callable[..., DaemonMetaNode], prefix: str, *extra: str) -> DaemonMetaNode:
    """A node with the fake API, the primary network and a daemon started with ``extra``."""
    mn = make_node(DaemonMetaNode, prefix=prefix)
    mn.start_api()
    mn.write_primary()
    mn.daemon = start_daemon(mn.root / "daemon", netns=mn.name, args=[
        "--kubeconfig", str(mn.kubeconfig), "--node-name", "node-1", "--conf-dir", str(mn.conf_dir),
        "--cache-dir", str(mn.cni_dir), "--cni-path", CNI_PATH, "--no-routes", "--gc-period", "0",
        "--no-regenerate-config", *extra])
    return mn


@pytest.fixture
def node(make_node: Callable[..., DaemonMetaNode]) -> DaemonMetaNode:
    mn = daemon_node(make_node, "mchot", "--dynamic-networks")
    mn.two_nads()
    return mn


def set_networks(node: Node, pod: Pod, value: str) -> None:
    assert node.api is not None
    node.api.patch_pod(pod.namespace, pod.name, {"metadata": {"annotations": {NETWORKS: value}}})


def status_names(node: Node, pod: Pod) -> dict[str, list[str]]:
    return {e.get("interface", ""): e.get("ips", []) for e in node.network_status(pod)}


def ping(node: Node, ip: str, timeout: float = 5.0) -> bool:
    """One ICMP echo from the node to ``ip`` (through the NAD's bridge)."""
    return traffic.ping(node.path, ip, timeout)


class Conversation:
    """One TCP connection from the node to the pod's eth0, echoing through the test."""

    def __init__(self, node: Node, pod: Pod, ip: str) -> None:
        with enter(pod.path):
            self.listener = socket.create_server(("0.0.0.0", 0))
        port = self.listener.getsockname()[1]
        with enter(node.path):
            self.client = socket.create_connection((ip, port), timeout=10)
        self.server, _ = self.listener.accept()
        self.server.settimeout(10)

    def works(self, payload: bytes) -> bool:
        self.client.sendall(payload)
        got = b""
        while len(got) < len(payload):
            chunk = self.server.recv(len(payload) - len(got))
            if not chunk:
                return False
            got += chunk
        return got == payload

    def close(self) -> None:
        for s in (self.client, self.server, self.listener):
            s.close()


def dynamic_condition(node: Node, pod: Pod) -> dict[str, Any] | None:
    assert node.api is not None
    stored = node.api.get_pod(pod.namespace, pod.name) or {}
    conds = (stored.get("status") or {}).get("conditions") or []
    return next((c for c in conds if c.get("type") == "metacni.io/DynamicNetworks"), None)


def eth0_ip(node: Node, pod: Pod) -> str:
    return status_names(node, pod)["eth0"][0]


def test_add_then_remove_a_network_keeps_eth0_connection(node: DaemonMetaNode):
    node.add_nad("net-m", "br-m", "10.89.3.0/24", ipMasq=True)  # a network with firewall rules
    pod = node.pod()
    node.cni("ADD", pod)
    assert pod.container_id not in ruleset(node.name)  # control: eth0's network has no rule naming it
    conv = Conversation(node, pod, eth0_ip(node, pod))
    try:
        assert conv.works(b"before")
        set_networks(node, pod, "net-m")
        wait_for("net1 in the pod", lambda: "net1" in node.pod_links(pod))
        ips = wait_for("net1 in network-status", lambda: status_names(node, pod).get("net1"))
        assert ips[0].startswith("10.89.3.")
        assert ping(node, ips[0])
        assert node.leases("net-m") == [ips[0]]
        assert pod.container_id in ruleset(node.name)  # net-m's masquerade rule
        assert conv.works(b"during")
        set_networks(node, pod, "net-m, net-b")  # net1 is unchanged: kept as it is, with its address
        wait_for("net2", lambda: "net2" in status_names(node, pod))
        assert status_names(node, pod)["net1"] == ips
        assert node.leases("net-m") == [ips[0]]
        set_networks(node, pod, "")
        wait_for("net1 gone", lambda: not {"net1", "net2"} & node.pod_links(pod))
        wait_for("net1 out of network-status", lambda: set(status_names(node, pod)) == {"eth0"})
        assert node.leases("net-m") == [] and node.leases("net-b") == []
        assert pod.container_id not in ruleset(node.name)
        assert not ping(node, ips[0], timeout=1.0)
        assert conv.works(b"after")
    finally:
        conv.close()
    node.cni("DEL", pod)
    node.assert_clean(pod)


def test_two_quick_edits_end_in_the_last_state(node: DaemonMetaNode):
    pod = node.pod()
    node.cni("ADD", pod)
    set_networks(node, pod, "net-a")
    set_networks(node, pod, "net-b@extra")
    wait_for("extra in network-status", lambda: "extra" in status_names(node, pod))
    wait_for("only extra", lambda: node.pod_links(pod) == {"lo", "eth0", "extra"})
    assert node.leases("net-a") == []
    assert status_names(node, pod)["extra"][0].startswith("10.89.2.")
    node.cni("DEL", pod)
    node.assert_clean(pod)


def gc(node: DaemonMetaNode, pod: Pod, valid: list[Pod]) -> None:
    """CNI GC through the daemon, as libcni sends it (``valid``: the attachments still live)."""
    attachments = [{"containerID": p.container_id, "ifname": "eth0"} for p in valid]
    conf = dict(node.meta_conf(), cniVersion="1.1.0",
                **{"cni.dev/valid-attachments": attachments, "cni.dev/attachments": attachments})
    node.cni("GC", pod, conf=conf)


def test_hot_plugged_interface_removed_by_pod_del_and_gc_finds_nothing(node: DaemonMetaNode):
    pod, stale = node.pod(), node.pod(name="stale")
    node.cni("ADD", pod)
    node.cni("ADD", stale)
    set_networks(node, pod, "net-a")
    set_networks(node, stale, "net-b")
    wait_for("pod's net1", lambda: "net1" in status_names(node, pod))
    wait_for("stale's net1", lambda: "net1" in status_names(node, stale))
    record = json.loads((node.cni_dir / pod.container_id).read_text())
    assert [d["ifname"] for d in record["delegates"]] == ["eth0", "net1"]
    node.cni("DEL", pod)
    assert "net1" not in node.pod_links(pod)
    assert node.leases("net-a") == []
    # GC sees the hot-plugged interface of a container the runtime no longer lists...
    gc(node, pod, valid=[])
    assert node.leases("net-b") == []
    # ... and after the DEL and that GC, nothing of either pod is left.
    node.assert_clean(pod)
    node.assert_clean(stale)
    gc(node, pod, valid=[])
    node.assert_clean(stale)


def test_failing_attach_leaves_pod_and_warns(node: DaemonMetaNode):
    assert node.api is not None
    node.api.add_nad("default", "broken", {"cniVersion": "1.0.0", "name": "broken", "type": "no-such-plugin"})
    pod = node.pod()
    node.cni("ADD", pod)
    before = node.network_status(pod)
    set_networks(node, pod, "broken")

    def warning() -> list[Any]:
        return [e for e in node.api.list_objects("events", "default")  # type: ignore[union-attr]
                if e.get("type") == "Warning" and "dynamic networks" in e.get("message", "")]

    events = wait_for("a Warning event", warning)
    assert "broken" in events[0]["message"]
    assert node.pod_links(pod) == {"lo", "eth0"}
    assert node.network_status(pod) == before
    record = json.loads((node.cni_dir / pod.container_id).read_text())
    assert [d["ifname"] for d in record["delegates"]] == ["eth0"]
    cond = wait_for("a False condition", lambda: dynamic_condition(node, pod))
    assert cond["status"] == "False" and cond["reason"] == "AttachFailed", cond
    assert "no-such-plugin" in cond["message"]
    # never loops: an unrelated pod update does not retry it
    node.api.patch_pod(pod.namespace, pod.name, {"metadata": {"labels": {"x": "y"}}})
    set_networks(node, pod, "net-a")  # a new value is tried
    wait_for("net1", lambda: "net1" in status_names(node, pod))
    assert len(warning()) == 1
    wait_for("a True condition", lambda: (dynamic_condition(node, pod) or {}).get("status") == "True")
    node.cni("DEL", pod)
    node.assert_clean(pod)


def test_change_while_pod_is_deleted_changes_nothing(node: DaemonMetaNode):
    assert node.api is not None
    pod, probe = node.pod(), node.pod(name="probe")
    node.cni("ADD", pod)
    node.cni("ADD", probe)
    node.api.patch_pod(pod.namespace, pod.name, {"metadata": {"deletionTimestamp": "2026-01-01T00:00:00Z",
                                                              "annotations": {NETWORKS: "net-a"}}})
    set_networks(node, pod, "net-a, net-b")  # a later edit, still while deleting
    # The watcher works through pods in order on one thread: once the probe's later edit is
    # applied, the deleting pod's edits have been seen (and must have been skipped).
    set_networks(node, probe, "net-b")
    wait_for("probe's net1", lambda: "net1" in status_names(node, probe))
    assert node.pod_links(pod) == {"lo", "eth0"}
    assert node.leases("net-a") == []
    node.cni("DEL", pod)
    node.cni("DEL", probe)
    node.assert_clean(pod)
    node.assert_clean(probe)


def test_unparsable_annotation_changes_nothing(node: DaemonMetaNode):
    pod = node.pod()
    node.cni("ADD", pod)
    set_networks(node, pod, "net-a")
    ips = wait_for("net1", lambda: status_names(node, pod).get("net1"))
    set_networks(node, pod, '[{"name": "net-b"')  # not JSON
    cond = wait_for("a False condition",
                    lambda: (c := dynamic_condition(node, pod)) and c["status"] == "False" and c)
    assert "networks" in cond["message"], cond
    assert node.pod_links(pod) == {"lo", "eth0", "net1"}
    assert status_names(node, pod)["net1"] == ips
    assert node.leases("net-a") == ips and node.leases("net-b") == []
    node.cni("DEL", pod)
    node.assert_clean(pod)


# The Multus dynamic networks controller's client, replayed byte for byte. Sources read:
#   k8snetworkplumbingwg/multus-dynamic-networks-controller@7b7d8941952ac168d718c21a53b482d0f7cae593
#     pkg/multuscni/client.go  (InvokeDelegate/DoCNI/httpRequest: POST http://dummy/delegate over the
#       unix socket, only header set: Content-Type: application/json; anything but 200 is a failure;
#       a non-empty body must unmarshal into api.Response, and ADD dereferences response.Result)
#     pkg/controller/pod.go    (addNetworks/removeNetworks: CNI_CONTAINERID is the CRI sandbox id,
#       CNI_NETNS the CRI netns path, CNI_IFNAME the selection's "interface" (DEL: network-status'
#       interface); config = serializeNetAttachDefWithDefaults: the NAD's spec.config verbatim, or
#       re-marshalled with "name" set to the NAD's name when it has none; interfaceAttributes only
#       when the selection has ips, mac or cni-args, never on DEL)
#   k8snetworkplumbingwg/multus-cni@95a0932350f0060cd232096876e24672a1de83fa
#     pkg/server/api/api.go    (CreateDelegateRequest: the env map and the CNI_ARGS string)
#     pkg/server/api/types.go  (Request: env, config []byte -> base64, interfaceAttributes omitempty;
#       DelegateInterfaceAttributes: ips/mac omitempty, "cni-args" always, null when unset)
#     pkg/server/server.go     (HandleDelegateRequest: ADD 200 {"Result": <CNI 1.0.0>}, DEL 200 with
#       an empty body, errors 400 with a CNI error document)

def go_attributes(ips: list[str] | None = None, mac: str = "",
                  cni_args: dict[str, Any] | None = None) -> dict[str, Any] | None:
    """pod.go interfaceAttributes(): None unless one is set; then api.DelegateInterfaceAttributes
    as encoding/json writes it (ips and mac omitted when empty, cni-args always present)."""
    if not ips and not mac and cni_args is None:
        return None
    attrs: dict[str, Any] = {}
    if ips:
        attrs["ips"] = ips
    if mac:
        attrs["mac"] = mac
    attrs["cni-args"] = cni_args
    return attrs


def go_nad_config(spec_config: str, nad_name: str) -> bytes:
    """nadutils.GetCNIConfigFromSpec: the text as is, unless "name" is missing or empty."""
    raw = json.loads(spec_config)
    if raw.get("name"):
        return spec_config.encode()
    raw["name"] = nad_name
    return json.dumps(raw, sort_keys=True, separators=(",", ":")).encode()  # Go marshals maps sorted


def go_request_body(command: str, pod: Pod, ifname: str, config: bytes,
                    attrs: dict[str, Any] | None = None, uid: str = "uid-1") -> bytes:
    """json.Marshal(api.CreateDelegateRequest(...)): struct field order, map keys sorted, compact."""
    env = {"CNI_COMMAND": command.upper(), "CNI_CONTAINERID": pod.container_id, "CNI_NETNS": pod.path,
           "CNI_IFNAME": ifname,
           "CNI_ARGS": f"K8S_POD_NAMESPACE={pod.namespace};K8S_POD_NAME={pod.name};K8S_POD_UID={uid}"}
    req: dict[str, Any] = {"env": dict(sorted(env.items())), "config": base64.b64encode(config).decode()}
    if attrs is not None:
        req["interfaceAttributes"] = attrs
    return json.dumps(req, separators=(",", ":")).encode()


def go_post(node: DaemonMetaNode, body: bytes) -> tuple[int, bytes]:
    """The bytes Go's net/http client writes for httpRequest(): Host from the dummy URL, its
    User-Agent, Content-Length, the one header the controller sets, the transport's
    Accept-Encoding; no Metacni-Protocol header. Answers are parsed as the client does."""
    assert node.daemon is not None
    head = ("POST /delegate HTTP/1.1\r\nHost: dummy\r\nUser-Agent: Go-http-client/1.1\r\n"
            f"Content-Length: {len(body)}\r\nContent-Type: application/json\r\n"
            "Accept-Encoding: gzip\r\n\r\n").encode()
    with unix_connect(node.daemon.socket, 60.0) as sock:
        sock.sendall(head + body)
        answer = read_answer(sock)
    assert "gzip" not in answer.headers.get("content-encoding", "")
    return answer.status, answer.body


def controller_accepts(command: str, status: int, body: bytes) -> dict[str, Any] | None:
    """InvokeDelegate's reading of an answer: None when the controller sees a failure, else the
    api.Response (ADD: its Result must be there, pod.go dereferences it)."""
    if status != 200:
        return None
    response = json.loads(body) if body else {}
    assert isinstance(response, dict), body
    if command == "ADD":
        assert isinstance(response.get("Result"), dict), body
    return response


def test_multus_delegate_endpoint(make_node: Callable[..., DaemonMetaNode]):
    node = daemon_node(make_node, "mcdlg")  # no --dynamic-networks: /delegate is served regardless
    pod = node.pod()
    node.cni("ADD", pod)
    # A selection with only "interface": no interfaceAttributes; the NAD's spec.config verbatim.
    spec = json.dumps(node.bridge_conf("net-a", "br-a", "10.89.1.0/24"), indent=2)
    body = go_request_body("ADD", pod, "net7", go_nad_config(spec, "net-a"))
    assert b"interfaceAttributes" not in body and b"IgnoreUnknown" not in body
    status, answer = go_post(node, body)
    response = controller_accepts("ADD", status, answer)
    assert response is not None, (status, answer)
    result = response["Result"]
    assert result["cniVersion"] == "1.0.0"
    assert [i["name"] for i in result["interfaces"] if i.get("sandbox")] == ["net7"]
    ip = result["ips"][0]["address"].split("/")[0]
    assert "net7" in node.pod_links(pod)
    assert ping(node, ip)
    assert status_names(node, pod)["net7"] == [ip]
    # A conflist NAD without "name" (the controller injects the NAD's) and a selection with "ips":
    # interfaceAttributes {"ips": [...], "cni-args": null}; the address is the requested one.
    plugin = node.bridge_conf("net-b", "br-b", "10.89.2.0/24")
    del plugin["name"], plugin["cniVersion"]
    plugin["capabilities"] = {"ips": True}
    unnamed = {"cniVersion": "1.0.0", "plugins": [plugin]}
    attrs = go_attributes(ips=["10.89.2.77/24"])
    assert attrs == {"ips": ["10.89.2.77/24"], "cni-args": None}
    status, answer = go_post(node, go_request_body("ADD", pod, "net8", go_nad_config(json.dumps(unnamed), "net-b"),
                                                   attrs))
    response = controller_accepts("ADD", status, answer)
    assert response is not None, (status, answer)
    assert [ip["address"] for ip in response["Result"]["ips"]] == ["10.89.2.77/24"]
    assert ping(node, "10.89.2.77")
    assert node.leases("net-b") == ["10.89.2.77"]
    # a selection without "interface" (the controller's README requires one): refused, named
    status, answer = go_post(node, go_request_body("ADD", pod, "", go_nad_config(spec, "net-a")))
    assert controller_accepts("ADD", status, answer) is None and status == 400, (status, answer)
    assert "CNI_IFNAME" in json.loads(answer)["details"] and "interface" in json.loads(answer)["details"]
    # tenant rules apply: a config writing outside allowedPaths is refused, pod unchanged
    bad = node.bridge_conf("net-x", "br-x", "10.89.9.0/24")
    bad["ipam"]["dataDir"] = "/etc"
    status, answer = go_post(node, go_request_body("ADD", pod, "net9", go_nad_config(json.dumps(bad), "net-x")))
    assert controller_accepts("ADD", status, answer) is None and status == 400, (status, answer)
    assert json.loads(answer)["code"] > 0
    assert node.pod_links(pod) == {"lo", "eth0", "net7", "net8"}
    # removeNetworks: CNI_IFNAME from network-status, no interfaceAttributes; 200 and no body
    for ifname, nad, conf in (("net7", "net-a", spec), ("net8", "net-b", json.dumps(unnamed))):
        status, answer = go_post(node, go_request_body("DEL", pod, ifname, go_nad_config(conf, nad)))
        assert controller_accepts("DEL", status, answer) is not None, (status, answer)
        assert answer == b""
    # The daemon's bridge DEL detaches at once and deletes the veth pair in the background (reaper).
    wait_for("net7 and net8 gone", lambda: node.pod_links(pod) == {"lo", "eth0"})
    assert node.leases("net-a") == [] and node.leases("net-b") == []
    assert not {"net7", "net8"} & set(status_names(node, pod))
    # a selection removed and added back at once (the controller's DEL then ADD of the same name),
    # now with "ips" for a config that declares no capabilities: Multus' IP= CNI_ARGS carries it
    status, answer = go_post(node, go_request_body("ADD", pod, "net7", go_nad_config(spec, "net-a"),
                                                   go_attributes(ips=["10.89.1.200/24"])))
    response = controller_accepts("ADD", status, answer)
    assert response is not None, (status, answer)
    assert [ip["address"] for ip in response["Result"]["ips"]] == ["10.89.1.200/24"]
    assert node.leases("net-a") == ["10.89.1.200"]
    # the controller owns what it attached: the annotation watcher's plan never detaches it
    record = delegate_cache.read(node.cni_dir, pod.container_id)
    assert record is not None and "net7" in [d.ifname for d in record.delegates]
    assert hotplug.plan(record, [])[1] == []
    # interfaceAttributes obey the annotation's rules: a malformed MAC is refused, pod unchanged
    status, answer = go_post(node, go_request_body("ADD", pod, "net9", go_nad_config(json.dumps(unnamed), "net-b"),
                                                   go_attributes(mac="not-a-mac")))
    assert controller_accepts("ADD", status, answer) is None and status == 400, (status, answer)
    assert "mac" in json.loads(answer)["details"].lower(), answer
    assert node.pod_links(pod) == {"lo", "eth0", "net7"}
    status, answer = go_post(node, go_request_body("DEL", pod, "net7", go_nad_config(spec, "net-a")))
    assert (status, answer) == (200, b"")
    wait_for("net7 gone again", lambda: node.pod_links(pod) == {"lo", "eth0"})
    # a DEL of what is gone succeeds (the controller's rollback may repeat one)
    status, answer = go_post(node, go_request_body("DEL", pod, "net7", go_nad_config(spec, "net-a")))
    assert (status, answer) == (200, b"")
    status, answer = go_post(node, b'{"env":{"CNI_COMMAND":"ADD"},"config":"!!"}')
    assert status == 400
    node.cni("DEL", pod)
    node.assert_clean(pod)
