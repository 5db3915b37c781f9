"""The daemon's Kubernetes code never imports the generated API classes (issues #15/#16).

``kubernetes.client.api.core_v1_api`` alone costs ~21 MiB of RSS (docs/design/1603-kube-dynamic-client.md).
A fresh interpreter runs what a daemon does with the API against the fake API server: sync the
watch caches, read a pod and a NAD through the daemon's view (and a cache miss through the API),
patch the network status, post an event, write a hot-plug condition; then it reports which
generated modules are loaded.
"""

from __future__ import annotations

import json
import subprocess
import sys

from metacni.sim.fakeapi import FakeAPIServer

_SCRIPT = """
import json, sys
import metacni.daemon.app  # everything the daemon imports at start
from metacni.daemon.hotplug import api_condition_writer, condition
from metacni.daemon.kubecache import KubeCaches, view_factory
from metacni.meta import events
from metacni.meta.kube import KubeSettings

kubeconfig, discovery = sys.argv[1], sys.argv[2]
caches = KubeCaches(kubeconfig, "node-1", discovery_dir=discovery)
caches.start()
assert caches.wait_synced(30), "caches did not sync"
view = view_factory(caches, kubeconfig)({"kubeconfig": "/host/path/not/used"})
out = {
    "pod": view.get_pod("ns1", "p")["metadata"]["name"],
    "nad": view.get_nad("ns1", "net-a")["metadata"]["name"],
    "miss": view.api_view.get_pod("ns1", "elsewhere")["metadata"]["name"],
}
view.patch_pod_network_status("ns1", "p", [{"name": "primary", "interface": "eth0"}])
api_condition_writer(caches.api)("ns1", "p", condition(True, "Applied", "ok"))
rec = events.Recorder(KubeSettings(kubeconfig=kubeconfig, discovery_dir=discovery))
rec.emit(events.Event("ns1", "p", "", "Normal", "AddedInterface", "Add net1 [10.1.0.2/24] from ns1/net-a"))
assert rec.flush(20.0)
out["events_sent"] = rec.sent
rec.close()
caches.stop()
out["generated"] = sorted(m for m in sys.modules
                          if m.startswith(("kubernetes.client.api.", "kubernetes.client.models.")))
print(json.dumps(out))
"""


def test_daemon_api_paths_import_no_generated_api(tmp_path):
    with FakeAPIServer() as api:
        api.add_pod("ns1", "p", node_name="node-1")
        api.add_pod("ns1", "elsewhere", node_name="node-2")  # not in this node's cache: read from the API
        api.add_nad("ns1", "net-a", {"cniVersion": "1.0.0", "type": "bridge"})
        kubeconfig = api.write_kubeconfig(tmp_path / "kc")
        proc = subprocess.run([sys.executable, "-c", _SCRIPT, str(kubeconfig), str(tmp_path / "discovery")],
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr
        out = json.loads(proc.stdout)
        pod = api.get_pod("ns1", "p")
        event_reasons = [e["reason"] for e in api.list_objects("events", "ns1")]
    assert (out["pod"], out["nad"], out["miss"], out["events_sent"]) == ("p", "net-a", "elsewhere", 1)
    assert "k8s.v1.cni.cncf.io/network-status" in pod["metadata"]["annotations"]
    assert [c["type"] for c in pod["status"].get("conditions", [])] == ["metacni.io/DynamicNetworks"]
    assert event_reasons == ["AddedInterface"]
    assert out["generated"] == []
