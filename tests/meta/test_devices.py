"""Device-plugin networks end to end: a NAD with ``k8s.v1.cni.cncf.io/resourceName``, a fake
kubelet PodResources gRPC server (real v1 protocol), a recording delegate binary.

The delegate (``sriov-rec``, a script in a per-test CNI_PATH dir) records the stdin it got for
every call and creates a link in the pod (a veth pair inside it), as an SR-IOV plugin would move a VF in.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from metacni.engine.request import Invocation
from metacni.kernel.netns import enter
from metacni.meta import devices, hotplug
from metacni.meta.networks import Delegate
from metacni.spec.args import CniArgs
from metacni.spec.config import network_list_from_bytes
from metacni.spec.errors import CNIError, Code
from metacni_testkit.nodes import CNI_PATH, Pod
from metacni_testkit.nodes import Node as MetaNode
from metacni_testkit.podresources import FakePodResources

RESOURCE = "intel.com/sriov_vf"
OTHER = "example.com/dpdk"

RECORDER = f"""#!{sys.executable}
import json, os, subprocess, sys
conf = json.load(sys.stdin)
cmd, cid, ifname, netns = (os.environ.get(k, "") for k in ("CNI_COMMAND", "CNI_CONTAINERID", "CNI_IFNAME",
                                                            "CNI_NETNS"))
log_dir = conf["recordDir"]
with open(os.path.join(log_dir, f"{{cmd}}-{{cid}}-{{ifname}}.json"), "w") as handle:
    json.dump(conf, handle)
if cmd == "ADD" and conf.get("writeInfo"):  # as sriov-cni/userspace plugins fill CNIDeviceInfoFile
    with open(conf["runtimeConfig"]["CNIDeviceInfoFile"], "w") as handle:
        json.dump(conf["writeInfo"], handle)
if cmd == "ADD":
    subprocess.run(["nsenter", f"--net={{netns}}", "ip", "link", "add", ifname, "type", "veth", "peer", "name",
                    "pr-" + ifname], check=True)
    print(json.dumps({{"cniVersion": conf["cniVersion"], "interfaces": [{{"name": ifname, "sandbox": netns}}],
                      "ips": [{{"address": conf["address"], "interface": 0}}]}}))
elif cmd == "DEL" and netns:
    subprocess.run(["nsenter", f"--net={{netns}}", "ip", "link", "del", ifname], capture_output=True)
"""


class DeviceNode:
    """The meta node plus a kubelet socket, a device-info dir and the recording delegate."""

    def __init__(self, node: MetaNode, root: Path, kubelet: FakePodResources) -> None:
        self.node, self.root, self.kubelet = node, root, kubelet
        self.bin_dir = root / "bin"
        self.records = root / "records"
        self.info_dir = root / "devinfo" / "cni"
        for d in (self.bin_dir, self.records, self.info_dir):
            d.mkdir(parents=True)
        script = self.bin_dir / "sriov-rec"
        script.write_text(RECORDER)
        script.chmod(script.stat().st_mode | stat.S_IXUSR)

    def add_nad(self, name: str, resource: str | None, address: str, *, caps: bool = True,
                namespace: str = "default", **extra: Any) -> None:
        conf: dict[str, Any] = {"cniVersion": "1.0.0", "name": name, "type": "sriov-rec",
                                "recordDir": str(self.records), "address": address, **extra}
        if caps:
            conf["capabilities"] = {"deviceID": True, "CNIDeviceInfoFile": True}
        annotations = {"k8s.v1.cni.cncf.io/resourceName": resource} if resource else None
        self.node.api.add_nad(namespace, name, conf, annotations=annotations)

    def conf(self, **extra: Any) -> dict[str, Any]:
        conf = self.node.meta_conf()
        conf.update(deviceInfoDir=str(self.info_dir), podResourcesSocket=self.kubelet.socket_path)
        conf.update(extra)
        return conf

    def cni(self, verb: str, pod: Pod, **extra: Any) -> dict[str, Any] | None:
        inv = Invocation(command=verb, container_id=pod.container_id, netns=pod.path, ifname="eth0",
                         args=CniArgs.parse(pod.cni_args), cni_path=(CNI_PATH, str(self.bin_dir)))
        with enter(self.node.path):
            result = self.node.invoker.invoke("metacni", self.conf(**extra), inv)
        return result.to_wire() if result is not None else None

    def recorded(self, verb: str, pod: Pod, ifname: str) -> dict[str, Any]:
        return dict(json.loads((self.records / f"{verb}-{pod.container_id}-{ifname}.json").read_text()))

    def info_files(self) -> list[str]:
        return sorted(os.listdir(self.info_dir))


@pytest.fixture
def dev(node: MetaNode) -> Iterator[DeviceNode]:
    root = Path(tempfile.mkdtemp(prefix="mcdev-"))  # short: a unix socket path is at most 107 bytes
    try:
        with FakePodResources(str(root / "kubelet.sock")) as kubelet:
            yield DeviceNode(node, root, kubelet)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _networks(*names: str) -> dict[str, str]:
    return {"k8s.v1.cni.cncf.io/networks": ", ".join(names)}


def test_sriov_pod_gets_its_device_and_device_info(dev: DeviceNode) -> None:
    dev.add_nad("sriov-a", RESOURCE, "192.0.2.10/24")
    pod = dev.node.pod("web", annotations=_networks("sriov-a"))
    dev.kubelet.set_pod("default", "web", {RESOURCE: ["0000:3b:02.1"], "other.com/gpu": ["gpu0"]})

    dev.cni("ADD", pod)

    conf = dev.recorded("ADD", pod, "net1")
    assert conf["deviceID"] == "0000:3b:02.1"
    assert conf["pciBusID"] == "0000:3b:02.1"
    info_path = os.path.join(dev.info_dir, f"default-sriov-a-{pod.container_id}_net1")
    assert conf["runtimeConfig"] == {"deviceID": "0000:3b:02.1", "CNIDeviceInfoFile": info_path}
    assert dev.kubelet.calls == ["Get"]
    assert "net1" in dev.node.pod_links(pod)

    [primary, sriov] = dev.node.network_status(pod)
    assert "device-info" not in primary
    assert sriov["name"] == "default/sriov-a" and sriov["interface"] == "net1"
    assert sriov["ips"] == ["192.0.2.10"]
    assert sriov["device-info"] == {"type": "pci", "version": "1.1.0", "pci": {"pci-address": "0000:3b:02.1"}}
    assert dev.info_files() == [os.path.basename(info_path)]

    dev.cni("DEL", pod)
    assert dev.info_files() == []
    assert dev.recorded("DEL", pod, "net1")["deviceID"] == "0000:3b:02.1"  # DEL gets the same device
    dev.node.assert_clean(pod)


def test_two_pods_get_their_own_devices(dev: DeviceNode) -> None:
    dev.add_nad("sriov-a", RESOURCE, "192.0.2.10/24")
    web = dev.node.pod("web", annotations=_networks("sriov-a"))
    db = dev.node.pod("db", annotations=_networks("sriov-a"))
    dev.kubelet.set_pod("default", "web", {RESOURCE: ["0000:3b:02.1"]})
    dev.kubelet.set_pod("default", "db", {RESOURCE: ["0000:3b:02.4"]}, container="sidecar")

    dev.cni("ADD", web)
    dev.cni("ADD", db)

    assert dev.recorded("ADD", web, "net1")["deviceID"] == "0000:3b:02.1"
    assert dev.recorded("ADD", db, "net1")["deviceID"] == "0000:3b:02.4"
    assert dev.node.network_status(web)[1]["device-info"]["pci"]["pci-address"] == "0000:3b:02.1"
    assert dev.node.network_status(db)[1]["device-info"]["pci"]["pci-address"] == "0000:3b:02.4"

    dev.cni("DEL", web)  # removes web's device-info only
    assert dev.info_files() == [f"default-sriov-a-{db.container_id}_net1"]
    dev.cni("DEL", db)
    assert dev.info_files() == []


def test_several_attachments_and_resources_in_order(dev: DeviceNode) -> None:
    """Two attachments of one resource get distinct devices in sorted order (Multus); another
    resource is matched by name; a non-PCI ID gets no pciBusID; a plugin without the
    capabilities gets the IDs in its config only; a NAD without resourceName gets nothing."""
    dev.add_nad("sriov-a", RESOURCE, "192.0.2.10/24")
    dev.add_nad("sriov-b", RESOURCE, "192.0.2.11/24", caps=False)
    dev.add_nad("dpdk", OTHER, "198.51.100.2/24")
    dev.add_nad("plain", None, "203.0.113.2/24")
    pod = dev.node.pod("multi", annotations=_networks("sriov-a", "dpdk", "sriov-b", "plain"))
    dev.kubelet.set_pod("default", "multi", {RESOURCE: ["0000:3b:02.7", "0000:3b:02.2"]})
    dev.kubelet.set_pod("default", "multi", {OTHER: ["vhost-3"]}, container="second")

    dev.cni("ADD", pod)

    a, dpdk, b, plain = (dev.recorded("ADD", pod, f"net{i}") for i in (1, 2, 3, 4))
    assert (a["deviceID"], b["deviceID"]) == ("0000:3b:02.2", "0000:3b:02.7")
    assert "runtimeConfig" not in b and b["pciBusID"] == "0000:3b:02.7"
    assert dpdk["deviceID"] == "vhost-3" and "pciBusID" not in dpdk
    assert dpdk["runtimeConfig"]["deviceID"] == "vhost-3"
    assert "deviceID" not in plain and "runtimeConfig" not in plain
    status = {e["interface"]: e for e in dev.node.network_status(pod)}
    assert "device-info" not in status["net2"]  # no PCI address, no device plugin file
    assert "device-info" not in status["net4"]
    assert status["net3"]["device-info"]["pci"]["pci-address"] == "0000:3b:02.7"
    dev.cni("DEL", pod)
    assert dev.info_files() == []


@pytest.mark.parametrize("source", ["device-plugin", "cni-plugin"])
def test_device_info_from_the_device_plugin_or_the_cni_plugin(dev: DeviceNode, source: str) -> None:
    """The device plugin's own file is copied (NPWG ``dp`` dir); a CNI plugin may write the
    file it is given as CNIDeviceInfoFile. Either way it is the attachment's device-info."""
    info = {"type": "vdpa", "version": "1.1.0", "vdpa": {"parent-device": "vdpa:0000:65:00.2",
                                                          "driver": "vhost", "path": "/dev/vhost-vdpa-1"}}
    if source == "device-plugin":
        dp_dir = dev.info_dir.parent / "dp"
        dp_dir.mkdir()
        (dp_dir / "example.com-dpdk-vdpa1-device.json").write_text(json.dumps(info))
        dev.add_nad("dpdk", OTHER, "198.51.100.2/24")
    else:  # as sriov-cni / userspace-cni fill CNIDeviceInfoFile
        dev.add_nad("dpdk", OTHER, "198.51.100.2/24", writeInfo=info)
    pod = dev.node.pod("web", annotations=_networks("dpdk"))
    dev.kubelet.set_pod("default", "web", {OTHER: ["vdpa1"]})

    dev.cni("ADD", pod)
    assert dev.node.network_status(pod)[1]["device-info"] == info
    dev.cni("DEL", pod)
    assert dev.info_files() == []


def test_list_is_used_when_the_kubelet_has_no_get(dev: DeviceNode) -> None:
    dev.kubelet.get_supported = False
    dev.add_nad("sriov-a", RESOURCE, "192.0.2.10/24")
    pod = dev.node.pod("web", annotations=_networks("sriov-a"))
    dev.kubelet.set_pod("default", "other", {RESOURCE: ["0000:3b:02.1"]})
    dev.kubelet.set_pod("default", "web", {RESOURCE: ["0000:3b:02.3"]})

    dev.cni("ADD", pod)
    assert dev.kubelet.calls == ["Get", "List"]
    assert dev.recorded("ADD", pod, "net1")["deviceID"] == "0000:3b:02.3"
    dev.cni("DEL", pod)


def _add_error(dev: DeviceNode, pod: Pod, **extra: Any) -> CNIError:
    with pytest.raises(CNIError) as info:
        dev.cni("ADD", pod, **extra)
    return info.value


def test_missing_kubelet_socket_fails_the_add_and_rolls_back(dev: DeviceNode) -> None:
    dev.add_nad("sriov-a", RESOURCE, "192.0.2.10/24")
    pod = dev.node.pod("web", annotations=_networks("sriov-a"))
    missing = str(dev.root / "no-kubelet.sock")

    err = _add_error(dev, pod, podResourcesSocket=missing)

    assert err.code == Code.TRY_AGAIN_LATER
    assert missing in err.details and "default/web" in err.details and "does not exist" in err.details
    assert dev.node.pod_links(pod) == {"lo"}
    assert not (dev.records / f"ADD-{pod.container_id}-net1.json").exists()
    assert dev.info_files() == []
    dev.node.assert_clean(pod)


def test_pod_without_the_device_gets_a_clear_error(dev: DeviceNode) -> None:
    dev.add_nad("sriov-a", RESOURCE, "192.0.2.10/24")
    dev.add_nad("sriov-b", RESOURCE, "192.0.2.11/24")
    pod = dev.node.pod("web", annotations=_networks("sriov-a", "sriov-b"))
    dev.kubelet.set_pod("default", "web", {RESOURCE: ["0000:3b:02.1"]})  # one device, two attachments

    err = _add_error(dev, pod)

    assert err.code == Code.INVALID_CONFIG
    assert "default/sriov-b" in err.details and RESOURCE in err.details and "pod default/web" in err.details
    assert "holds 1" in err.details
    assert dev.info_files() == []
    dev.node.assert_clean(pod)


def _exec(dev: DeviceNode, verb: str, pod: Pod | None, conf: dict[str, Any]) -> None:
    """This interpreter's ``metacni`` console script (PATH may hold another installation's), run
    as a runtime execs it, without a daemon; ``pod`` None: no attachment (GC)."""
    metacni = os.path.join(os.path.dirname(sys.executable), "metacni")
    assert os.access(metacni, os.X_OK)
    env = {k: v for k, v in os.environ.items() if not k.startswith("CNI_")}
    env.update(CNI_COMMAND=verb, CNI_PATH=f"{CNI_PATH}:{dev.bin_dir}")
    if pod is not None:
        env.update(CNI_CONTAINERID=pod.container_id, CNI_NETNS=pod.path, CNI_IFNAME="eth0", CNI_ARGS=pod.cni_args)
    proc = subprocess.run(["ip", "netns", "exec", dev.node.name, metacni], input=json.dumps(conf).encode(),
                          env=env, capture_output=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_standalone_binary_attaches_the_device(dev: DeviceNode) -> None:
    dev.add_nad("sriov-a", RESOURCE, "192.0.2.10/24")
    pod = dev.node.pod("web", annotations=_networks("sriov-a"))
    dev.kubelet.set_pod("default", "web", {RESOURCE: ["0000:3b:02.6"]})

    _exec(dev, "ADD", pod, dev.conf())
    assert dev.recorded("ADD", pod, "net1")["deviceID"] == "0000:3b:02.6"
    assert dev.node.network_status(pod)[1]["device-info"]["pci"]["pci-address"] == "0000:3b:02.6"
    _exec(dev, "DEL", pod, dev.conf())
    assert dev.info_files() == []
    dev.node.assert_clean(pod)


def test_gc_of_a_stale_container_removes_its_device_info(dev: DeviceNode) -> None:
    dev.add_nad("sriov-a", RESOURCE, "192.0.2.10/24")
    pod = dev.node.pod("web", annotations=_networks("sriov-a"))
    dev.kubelet.set_pod("default", "web", {RESOURCE: ["0000:3b:02.6"]})
    dev.cni("ADD", pod)
    assert dev.info_files() != []

    conf = dict(dev.conf(), cniVersion="1.1.0", **{"cni.dev/valid-attachments": [], "cni.dev/attachments": []})
    _exec(dev, "GC", None, conf)
    assert dev.info_files() == []
    dev.node.assert_clean(pod)


def test_kubelet_error_is_reported_with_the_pod(dev: DeviceNode) -> None:
    """The kubelet does not know the pod (Get answers an error): code 11, naming pod and socket."""
    dev.add_nad("sriov-a", RESOURCE, "192.0.2.10/24")
    pod = dev.node.pod("ghost", annotations=_networks("sriov-a"))
    err = _add_error(dev, pod)
    assert err.code == Code.TRY_AGAIN_LATER
    assert "default/ghost" in err.details and dev.kubelet.socket_path in err.details
    assert "not found" in err.details
    dev.node.assert_clean(pod)


@settings(max_examples=200, deadline=None)
@given(label=st.text(min_size=1, max_size=40) | st.from_regex(r"[a-z0-9-]{1,63}/[a-z0-9.-]{1,253}", fullmatch=True),
       ifname=st.text(min_size=1, max_size=20))
def test_device_info_file_stays_in_its_directory(label: str, ifname: str) -> None:
    """Whatever a NAD or pod names, the device-info file is a plain file of deviceInfoDir whose
    name and atomic-write temporary file fit NAME_MAX, or no file at all (CNIError)."""
    net = network_list_from_bytes(json.dumps({"cniVersion": "1.0.0", "name": "n", "type": "x"}).encode())
    d = Delegate(label=label, net=net, ifname=ifname)
    try:
        path = devices.info_file("/run/devinfo/cni", d, "c" * 64)
    except CNIError as exc:
        assert exc.code == Code.INVALID_CONFIG
        return
    assert path.parent == Path("/run/devinfo/cni")
    assert path.name not in ("", ".", "..") and "\x00" not in str(path)
    assert len(f".{path.name}.{'0' * 12}".encode()) <= 255


def test_a_nad_name_too_long_for_its_device_info_file_is_refused_up_front(dev: DeviceNode) -> None:
    """A 63-character namespace and NAD name and a 128-character container id: the file name
    ``<ns>-<nad>-<containerID>_<ifname>`` (Multus') would exceed NAME_MAX with its temporary
    file. The ADD fails with code 7 naming the network before any plugin ran."""
    namespace, nad = "n" * 63, "s" * 63
    conf = {"cniVersion": "1.0.0", "name": "sriov-long", "type": "sriov-rec", "recordDir": str(dev.records),
            "address": "192.0.2.10/24", "capabilities": {"deviceID": True, "CNIDeviceInfoFile": True}}
    dev.node.api.add_nad(namespace, nad, conf, annotations={"k8s.v1.cni.cncf.io/resourceName": RESOURCE})
    pod = dev.node.pod("web", namespace=namespace, annotations=_networks(nad))
    pod = dataclasses.replace(pod, container_id=pod.container_id.ljust(128, "0"))
    dev.kubelet.set_pod(namespace, "web", {RESOURCE: ["0000:3b:02.1"]})

    err = _add_error(dev, pod)

    assert err.code == Code.INVALID_CONFIG and err.msg == "device-info file name too long", err
    assert f"{namespace}/{nad}" in err.details and "NAME_MAX" in err.details
    assert not list(dev.records.iterdir())  # no plugin ran
    assert dev.info_files() == []
    dev.node.assert_clean(pod)


@pytest.mark.parametrize(("given", "read"), [
    ("/run/devinfo/cni/default-n-cid_net1", True), ("/run/devinfo/cni/", False),
    ("/run/devinfo/cni/..", False), ("/run/devinfo/cni/sub/f", False), ("/run/devinfo/cnix/f", False),
    ("/run/devinfo/f", False), ("", False)])
def test_network_status_reads_device_info_only_from_a_file_of_the_info_dir(given: str, read: bool) -> None:
    """The cached ``CNIDeviceInfoFile`` names what network-status reads: only a file directly in
    deviceInfoDir (by path elements, not string prefix), never the directory or its parent."""
    from metacni.meta.network_status import device_info_path

    net = network_list_from_bytes(json.dumps({"cniVersion": "1.0.0", "name": "n", "type": "x"}).encode())
    d = Delegate(label="default/n", net=net, ifname="net1",
                 capability_args={"deviceID": "0000:af:00.1", "CNIDeviceInfoFile": given})
    assert device_info_path("/run/devinfo/cni/", d) == (Path(given) if read else None)


def test_device_id_reaches_every_plugin_of_a_list() -> None:
    raw = {"cniVersion": "1.0.0", "name": "n", "plugins": [{"type": "sriov"}, {"type": "tuning", "mtu": 9000}]}
    d = Delegate(label="default/n", net=network_list_from_bytes(json.dumps(raw).encode()), ifname="net1")
    devices.with_device(d, "0000:af:00.3")
    assert [p["deviceID"] for p in d.net.plugins] == ["0000:af:00.3"] * 2
    assert [p["pciBusID"] for p in d.net.plugins] == ["0000:af:00.3"] * 2
    assert d.net.plugins[1]["mtu"] == 9000
    assert d.capability_args == {"deviceID": "0000:af:00.3"}


def test_grpc_is_imported_only_to_ask_the_kubelet() -> None:
    """A pod without device-plugin networks never loads grpc or protobuf: not even the
    device modules import it at module level."""
    code = ("import sys, metacni.meta.service, metacni.meta.devices, metacni.meta.podresources, "
            "metacni.meta.kubelet_podresources; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('grpc', 'google')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd="/")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_a_pod_may_ask_for_one_of_its_own_devices(dev: DeviceNode) -> None:
    """NPWG ``deviceID`` in the selection picks among the pod's devices; the other attachment
    of the resource gets the remaining one."""
    dev.add_nad("sriov-a", RESOURCE, "192.0.2.10/24")
    dev.add_nad("sriov-b", RESOURCE, "192.0.2.11/24")
    selection = [{"name": "sriov-a"}, {"name": "sriov-b", "deviceID": "0000:3b:02.1"}]
    pod = dev.node.pod("web", annotations={"k8s.v1.cni.cncf.io/networks": json.dumps(selection)})
    dev.kubelet.set_pod("default", "web", {RESOURCE: ["0000:3b:02.1", "0000:3b:02.2"]})

    dev.cni("ADD", pod)
    assert dev.recorded("ADD", pod, "net1")["deviceID"] == "0000:3b:02.2"
    assert dev.recorded("ADD", pod, "net2")["deviceID"] == "0000:3b:02.1"
    assert dev.recorded("ADD", pod, "net2")["runtimeConfig"]["deviceID"] == "0000:3b:02.1"
    dev.cni("DEL", pod)
    assert dev.info_files() == []


@pytest.mark.parametrize("resource", [RESOURCE, None], ids=["nad-with-resource", "nad-without-resource"])
def test_a_pod_cannot_take_another_pods_device(dev: DeviceNode, resource: str | None) -> None:
    """Tenant input: a deviceID the pod does not hold (here: its neighbour's VF) is refused,
    whether or not the NAD names a resource; nothing is attached."""
    dev.add_nad("sriov-a", resource, "192.0.2.10/24")
    dev.kubelet.set_pod("default", "victim", {RESOURCE: ["0000:3b:02.4"]})
    dev.kubelet.set_pod("default", "web", {RESOURCE: ["0000:3b:02.1"]})
    selection = [{"name": "sriov-a", "deviceID": "0000:3b:02.4"}]
    pod = dev.node.pod("web", annotations={"k8s.v1.cni.cncf.io/networks": json.dumps(selection)})

    err = _add_error(dev, pod)

    assert err.code == Code.INVALID_CONFIG
    assert "0000:3b:02.4" in err.details and "pod default/web" in err.details and "default/sriov-a" in err.details
    assert not (dev.records / f"ADD-{pod.container_id}-net1.json").exists()
    dev.node.assert_clean(pod)


def test_a_nad_as_cluster_network_gets_a_device_too(dev: DeviceNode) -> None:
    """clusterNetwork naming a NAD with a resource (Multus: every NAD-sourced delegate)."""
    dev.add_nad("sriov-primary", RESOURCE, "192.0.2.20/24", namespace="kube-system")
    dev.add_nad("sriov-a", RESOURCE, "192.0.2.10/24")
    pod = dev.node.pod("web", annotations=_networks("sriov-a"))
    dev.kubelet.set_pod("default", "web", {RESOURCE: ["0000:3b:02.3", "0000:3b:02.1"]})

    dev.cni("ADD", pod, clusterNetwork="sriov-primary")

    assert dev.recorded("ADD", pod, "eth0")["deviceID"] == "0000:3b:02.1"
    assert dev.recorded("ADD", pod, "net1")["deviceID"] == "0000:3b:02.3"
    primary, secondary = dev.node.network_status(pod)
    assert primary["name"] == "kube-system/sriov-primary"
    assert primary["device-info"]["pci"]["pci-address"] == "0000:3b:02.1"
    assert secondary["device-info"]["pci"]["pci-address"] == "0000:3b:02.3"
    dev.cni("DEL", pod, clusterNetwork="sriov-primary")
    assert dev.info_files() == []


def test_a_hot_plugged_network_gets_only_the_pods_own_devices(dev: DeviceNode) -> None:
    """Security review 2026-12-03: a network added to a running pod (dynamic networks) skipped the
    device assignment, so the annotation's ``deviceID`` reached the plugin unchecked: a pod could
    take its neighbour's VF (or a node NIC) through a NAD declaring the capability. Now a hot-plug
    gets devices as ADD does: only the pod's own, never one its other attachments have."""
    dev.add_nad("sriov-a", None, "192.0.2.10/24")
    dev.add_nad("sriov-b", RESOURCE, "192.0.2.11/24")
    dev.kubelet.set_pod("default", "victim", {RESOURCE: ["0000:3b:02.4"]})
    dev.kubelet.set_pod("default", "web", {RESOURCE: ["0000:3b:02.1", "0000:3b:02.2"]})
    pod = dev.node.pod("web", annotations=_networks("sriov-b"))
    dev.cni("ADD", pod)
    assert dev.recorded("ADD", pod, "net1")["deviceID"] == "0000:3b:02.1"

    def plug(selection: list[dict[str, str]]) -> hotplug.Outcome:
        with enter(dev.node.path):
            return hotplug.reconcile(dev.conf(), pod.container_id, _networks(json.dumps(selection)),
                                     invoker=dev.node.invoker, cni_path=(CNI_PATH, str(dev.bin_dir)))

    for device, word in (("0000:3b:02.4", "not a device"), ("0000:3b:02.1", "has already")):
        with pytest.raises(CNIError) as refused:
            plug([{"name": "sriov-b"}, {"name": "sriov-a", "deviceID": device}])
        assert refused.value.code == Code.INVALID_CONFIG, refused.value
        assert device in refused.value.details and word in refused.value.details, refused.value.details
        assert not (dev.records / f"ADD-{pod.container_id}-net2.json").exists()
        assert dev.node.pod_links(pod) == {"lo", "eth0", "net1", "pr-net1"}

    outcome = plug([{"name": "sriov-b"}, {"name": "sriov-b"}])  # by resource: the pod's other VF
    assert outcome.attached == ["net2"]
    assert dev.recorded("ADD", pod, "net2")["deviceID"] == "0000:3b:02.2"
    assert len(dev.info_files()) == 2
    dev.cni("DEL", pod)
    assert dev.info_files() == []
    dev.node.assert_clean(pod)
