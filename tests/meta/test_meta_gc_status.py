"""GC, STATUS and the readiness indicator of the meta plugin (CNI 1.1, issue #5).

GC and STATUS run the installed ``metacni`` executable inside the node namespace with
CNI_COMMAND and the config on stdin, as a runtime does; the readiness-wait tests run ADD
through the Invoker so the wait can be observed without sleeping.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import threading
from pathlib import Path
from typing import Any

import pytest

from metacni.engine.cache import ResultCache
from metacni.engine.chain import ChainRunner
from metacni.engine.invoke import Invoker
from metacni.engine.registry import Registry
from metacni.meta import service
from metacni.sim.traffic import ping
from metacni.spec.config import network_list_from_bytes
from metacni.spec.errors import Code

NETWORKS = "k8s.v1.cni.cncf.io/networks"
PRIMARY = "primary-net"
CNI_PATH = "/usr/lib/cni"
API = {"apiTimeout": 5, "apiConnectTimeout": 2, "apiRetries": 0}


# ------------------------------------------------------------------------------ helpers
def run_meta(node, verb: str, conf: dict[str, Any], cni_path: str = CNI_PATH) -> tuple[int, dict[str, Any] | None]:
    """The ``metacni`` executable as a runtime runs it for GC/STATUS: no attachment parameters."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME", "CNI_ARGS")}
    env.update(CNI_COMMAND=verb, CNI_PATH=cni_path)
    return node.exec_metacni(conf, env)


def gc(node, valid: list[tuple[str, str]]) -> tuple[int, dict[str, Any] | None]:
    """GC as libcni sends it: the meta plugin's config plus both attachment keys."""
    attachments = [{"containerID": cid, "ifname": ifname} for cid, ifname in valid]
    conf = dict(node.meta_conf(), **{"cni.dev/valid-attachments": attachments, "cni.dev/attachments": attachments})
    return run_meta(node, "GC", conf)


def lease_owners(node) -> dict[str, set[tuple[str, str]]]:
    """network -> {(containerID, ifname)} read straight from host-local's lease files."""
    out: dict[str, set[tuple[str, str]]] = {}
    for network, ips in node.all_leases().items():
        for ip in ips:
            text = (node.data_dir / network / ip).read_bytes().decode()  # no newline translation
            cid, _, ifname = text.partition("\r\n")
            out.setdefault(network, set()).add((cid, ifname))
    return out


def plant_lease(node, network: str, ip: str, container_id: str, ifname: str) -> None:
    """A lease host-local wrote for a container nobody knows any more (a crash mid-DEL)."""
    directory = node.data_dir / network
    directory.mkdir(parents=True, exist_ok=True)
    (directory / ip).write_text(f"{container_id}\r\n{ifname}")


def cache_files(node, *pods) -> list[str]:
    return sorted(f for f in node.result_cache_files() if any(p.container_id in f for p in pods))


def gc_node(node) -> None:
    """Primary and one NAD at 1.1.0, so GC reaches host-local and portmap too."""
    node.write_primary(version="1.1.0", extra=API)
    node.add_nad("net-a", "br-a", "10.89.1.0/24", cniVersion="1.1.0")


def two_pods(node):
    pods = [node.pod(name, annotations={NETWORKS: "net-a"}) for name in ("live", "gone")]
    for pod in pods:
        node.cni("ADD", pod)
        assert node.pod_links(pod) == {"lo", "eth0", "net1"}
    return pods


# ------------------------------------------------------------------------------ GC
def test_gc_removes_stale_pod_and_leaves_valid_one_working(node):
    gc_node(node)
    live, gone = two_pods(node)
    plant_lease(node, PRIMARY, "10.88.0.200", "cid-forgotten", "eth0")
    plant_lease(node, "net-a", "10.89.1.200", "cid-forgotten", "net1")

    rc, out = gc(node, [(live.container_id, "eth0")])
    assert rc == 0 and out is None, out

    assert node.pod_links(gone) == {"lo"}  # full teardown of the stale pod: eth0 and net1
    assert lease_owners(node) == {PRIMARY: {(live.container_id, "eth0")}, "net-a": {(live.container_id, "net1")}}
    assert node.result_cache_files() == sorted([f"{PRIMARY}-{live.container_id}-eth0",
                                                f"net-a-{live.container_id}-net1"])
    assert not (node.cni_dir / gone.container_id).exists()
    assert (node.cni_dir / live.container_id).exists()
    assert len(node.veths()) == 2  # the live pod's two

    # Untouched: both interfaces still pass traffic, CHECK (leases, links) passes, DEL works.
    assert node.pod_links(live) == {"lo", "eth0", "net1"}
    assert ping(live.path, "10.88.0.1") and ping(live.path, "10.89.1.1")
    node.cni("CHECK", live)
    node.cni("DEL", live)
    node.assert_clean(live)


def test_gc_with_empty_valid_list_removes_everything_known(node):
    """Records and result-cache entries both count: a pod whose record was lost and one whose
    record is corrupt are torn down from the result cache."""
    gc_node(node)
    intact, recordless = two_pods(node)
    corrupt = node.pod("corrupt", annotations={NETWORKS: "net-a"})
    node.cni("ADD", corrupt)
    (node.cni_dir / recordless.container_id).unlink()
    (node.cni_dir / corrupt.container_id).write_bytes(b'{"kind": "metacniDelegatesV1", "conta')

    rc, out = gc(node, [])
    assert rc == 0, out
    for pod in (intact, recordless, corrupt):
        assert node.pod_links(pod) == {"lo"}, pod.name
        assert not (node.cni_dir / pod.container_id).exists()
    assert node.all_leases() == {} and node.veths() == [] and node.result_cache_files() == []
    assert [p.name.split(".")[0] for p in (node.cni_dir / "corrupt").iterdir()] == [corrupt.container_id]


def test_gc_continues_past_errors_and_reports_them(node):
    gc_node(node)
    stuck, gone = two_pods(node)
    record = node.cni_dir / stuck.container_id
    original = record.read_bytes()
    data = json.loads(original)
    net_a = data["delegates"][1]
    conf = json.loads(base64.b64decode(net_a["config"]))
    conf = {"cniVersion": conf["cniVersion"], "name": conf["name"],  # net-a as a list, then a plugin
            "plugins": [{k: v for k, v in conf.items() if k not in ("cniVersion", "name")},
                        {"type": "metacni-test-absent"}]}  # whose DEL fails: it is not installed
    net_a["config"] = base64.b64encode(json.dumps(conf).encode()).decode()
    record.write_text(json.dumps(data))

    rc, out = gc(node, [])
    assert rc == 1 and out is not None
    assert out["msg"] == "garbage collection had errors"
    assert stuck.container_id in out["details"] and "metacni-test-absent" in out["details"]
    assert node.pod_links(gone) == {"lo"} and not cache_files(node, gone)  # went on past the error
    assert record.exists()  # kept for the retry
    assert node.pod_links(stuck) == {"lo", "net1"}  # eth0 still deleted; net1's chain stopped
    assert lease_owners(node) == {"net-a": {(stuck.container_id, "net1")}}  # not GC'd under it

    record.write_bytes(original)
    rc, out = gc(node, [])
    assert rc == 0, out
    node.assert_clean(stuck)


def test_gc_keeps_valid_pod_by_primary_ifname(node):
    """Only (containerID, primary ifname) makes a pod valid: the same container listed with
    another interface is stale."""
    gc_node(node)
    pod = node.pod(annotations={NETWORKS: "net-a"})
    node.cni("ADD", pod)
    rc, out = gc(node, [(pod.container_id, "eth0")])
    assert rc == 0, out
    assert node.pod_links(pod) == {"lo", "eth0", "net1"} and len(node.all_leases()) == 2
    rc, out = gc(node, [(pod.container_id, "net1")])
    assert rc == 0, out
    node.assert_clean(pod)


# ------------------------------------------------------------------------------ STATUS
def status_node(node, ready: bool, version: str = "1.1.0", **meta_options: Any) -> Path:
    indicator = node.root / "primary-ready"
    if ready:
        indicator.write_text("ok")
    node.write_primary(version=version, extra=dict(API, readinessindicatorfile=str(indicator)), **meta_options)
    return indicator


def test_status_ready(node):
    status_node(node, ready=True)
    assert run_meta(node, "STATUS", node.meta_conf()) == (0, None)


def test_status_missing_readiness_file_is_50(node):
    indicator = status_node(node, ready=False)
    rc, out = run_meta(node, "STATUS", node.meta_conf())
    assert rc == 1 and out is not None
    assert out["code"] == Code.NOT_AVAILABLE == 50
    assert str(indicator) in out["details"] and "readiness indicator" in out["msg"]


FAKE_PRIMARY = """#!/bin/sh
cat >/dev/null
if [ "$CNI_COMMAND" = STATUS ]; then
  echo '{"cniVersion": "1.1.0", "code": 50, "msg": "backend down", "details": "agent not running"}'
  exit 1
fi
echo '{"cniVersion": "1.1.0"}'
"""


@pytest.mark.parametrize("plugin", ["calico-not-installed", "fake-primary"])
def test_status_failing_primary_is_50_with_its_reason(node, plugin):
    status_node(node, ready=True)
    bin_dir = node.root / "bin"
    bin_dir.mkdir()
    script = bin_dir / "fake-primary"
    script.write_text(FAKE_PRIMARY)
    script.chmod(0o755)
    conflist = node.conf_dir / "10-primary.conflist"
    data = json.loads(conflist.read_text())
    data["plugins"].append({"type": plugin})
    conflist.write_text(json.dumps(data))

    rc, out = run_meta(node, "STATUS", node.meta_conf(), cni_path=f"{bin_dir}:{CNI_PATH}")
    assert rc == 1 and out is not None
    assert out["code"] == 50
    assert PRIMARY in out["details"]
    reason = "agent not running" if plugin == "fake-primary" else "failed to find plugin 'calico-not-installed'"
    assert reason in out["details"]


def test_status_not_sent_below_1_1_0(node):
    """libcni sends STATUS to no config below 1.1.0: a 1.0.0 primary is not asked (its plugin
    is not even installed here), and a 1.0.0 metacni config is a no-op success for the runtime."""
    status_node(node, ready=True, version="1.0.0", cni_version="1.1.0")
    conflist = node.conf_dir / "10-primary.conflist"
    data = json.loads(conflist.read_text())
    data["plugins"].append({"type": "calico-not-installed"})
    conflist.write_text(json.dumps(data))
    assert run_meta(node, "STATUS", node.meta_conf()) == (0, None)

    status_node(node, ready=False, version="1.0.0")  # 1.0.0 metacni config, indicator missing
    assert node.meta_conf()["cniVersion"] == "1.0.0"
    runner = ChainRunner(Invoker(Registry()), (CNI_PATH,), ResultCache(node.root / "runtime-cache"))
    runner.status(network_list_from_bytes(node.meta_conf_path.read_bytes(), str(node.meta_conf_path)))


# ------------------------------------------------------------------------------ readiness on ADD
@pytest.fixture
def indicator_spy(monkeypatch):
    """Records every look at the indicator file; ``absent_seen`` fires once one found nothing."""
    real = service.indicator_present
    looks: list[bool] = []
    absent_seen = threading.Event()

    def spy(path: str) -> bool:
        present = real(path)
        looks.append(present)
        if not present:
            absent_seen.set()
        return present

    monkeypatch.setattr(service, "indicator_present", spy)
    return looks, absent_seen


def _pod_behind_indicator(node, readiness_timeout: float) -> tuple[Path, Any]:
    """A primary that waits for ``<root>/primary-ready`` (not created here) up to the timeout,
    one NAD ``net-a`` and a pod that asks for it."""
    indicator = node.root / "primary-ready"
    node.write_primary(extra=dict(API, readinessindicatorfile=str(indicator), readinessTimeout=readiness_timeout))
    node.add_nad("net-a", "br-a", "10.89.1.0/24")
    return indicator, node.pod(annotations={NETWORKS: "net-a"})


def test_add_waits_for_readiness_file(node, indicator_spy):
    looks, absent_seen = indicator_spy
    indicator, pod = _pod_behind_indicator(node, readiness_timeout=60)

    def primary_comes_up() -> None:
        if absent_seen.wait(60):  # ADD is polling for it now
            indicator.write_text("ok")

    helper = threading.Thread(target=primary_comes_up)
    helper.start()
    try:
        result = node.cni("ADD", pod)
    finally:
        absent_seen.set()
        helper.join()
    assert looks[0] is False and looks[-1] is True  # it waited, then went on
    assert result["ips"][0]["address"].startswith("10.88.0.")
    assert node.pod_links(pod) == {"lo", "eth0", "net1"}
    node.cni("DEL", pod)
    node.assert_clean(pod)


def test_add_times_out_with_11_and_leaves_nothing(node, indicator_spy):
    looks, _ = indicator_spy
    indicator, pod = _pod_behind_indicator(node, readiness_timeout=0.5)
    node.api.reset_counts()
    err = node.cni_error("ADD", pod)
    assert err.code == Code.TRY_AGAIN_LATER == 11
    assert str(indicator) in err.details and "pod default/web" in err.details
    assert len(looks) > 1 and not any(looks)  # polled, never found
    assert node.api.count() == 0  # gave up before resolving anything
    node.assert_clean(pod)


def test_del_never_waits_for_readiness_file(node, indicator_spy):
    looks, _ = indicator_spy
    indicator, pod = _pod_behind_indicator(node, readiness_timeout=600)
    indicator.write_text("ok")
    node.cni("ADD", pod)
    indicator.unlink()  # the primary went away; teardown must still go through at once
    looks.clear()
    node.cni("DEL", pod)
    assert looks == []
    node.assert_clean(pod)


# ------------------------------------------------------------------------------ corrupt records (#14 item 6)
WRONG_RESULT_ENTRIES = {
    "result-int": lambda d: {**d, "result": 5},
    "capability-args-str": lambda d: {**d, "capabilityArgs": "x"},
    "cni-args-str": lambda d: {**d, "cniArgs": "x"},
    "config-int": lambda d: {**d, "config": 5},
    "top-level-list": lambda d: [d],
}
WRONG_RECORDS = {
    "delegates-str": lambda d: {**d, "delegates": "x"},
    "delegates-ints": lambda d: {**d, "delegates": [5, 6]},
    "pod-int": lambda d: {**d, "pod": 5},
    "primary-str": lambda d: {**d, "delegates": [{**d["delegates"][0], "primary": "yes"}, *d["delegates"][1:]]},
    "top-level-list": lambda d: [d],
}


def damage_result_entry(node, pod, how: str) -> Path:
    path = node.cni_dir / "results" / f"net-a-{pod.container_id}-net1"
    path.write_text(json.dumps(WRONG_RESULT_ENTRIES[how](json.loads(path.read_text()))))
    return path


def damage_record(node, pod, how: str) -> Path:
    path = node.cni_dir / pod.container_id
    path.write_text(json.dumps(WRONG_RECORDS[how](json.loads(path.read_text()))))
    return path


def quarantined(node) -> list[str]:
    directory = node.cni_dir / "corrupt"
    return sorted(p.name.rsplit(".", 1)[0] for p in directory.iterdir()) if directory.is_dir() else []


@pytest.mark.parametrize("how", sorted(WRONG_RESULT_ENTRIES))
def test_wrong_typed_result_entry_del_goes_on_and_quarantines(node, how):
    node.add_nad("net-a", "br-a", "10.89.1.0/24")
    pod = node.pod(annotations={NETWORKS: "net-a"})
    node.cni("ADD", pod)
    path = damage_result_entry(node, pod, how)
    node.cni("DEL", pod)
    node.assert_clean(pod)
    assert quarantined(node) == [path.name]


@pytest.mark.parametrize("how", sorted(WRONG_RESULT_ENTRIES))
def test_wrong_typed_result_entry_gc_goes_on_and_quarantines(node, how):
    gc_node(node)
    live, gone = two_pods(node)
    path = damage_result_entry(node, gone, how)
    rc, out = gc(node, [(live.container_id, "eth0")])
    assert rc == 0, out
    assert node.pod_links(gone) == {"lo"} and not cache_files(node, gone)
    assert not (node.cni_dir / gone.container_id).exists()
    assert lease_owners(node) == {PRIMARY: {(live.container_id, "eth0")}, "net-a": {(live.container_id, "net1")}}
    assert quarantined(node) == [path.name]
    rc, out = gc(node, [(live.container_id, "eth0")])  # never fails forever: the next GC is clean
    assert rc == 0, out
    assert node.pod_links(live) == {"lo", "eth0", "net1"}
    node.cni("DEL", live)
    node.assert_clean(live)


@pytest.mark.parametrize("how", sorted(WRONG_RECORDS))
def test_wrong_typed_delegate_record_del_and_gc_go_on(node, how):
    gc_node(node)
    by_del, by_gc = two_pods(node)
    damage_record(node, by_del, how)
    damage_record(node, by_gc, how)
    node.cni("DEL", by_del)  # from the result cache; the record is moved aside
    assert node.pod_links(by_del) == {"lo"} and not cache_files(node, by_del)
    assert all(cid != by_del.container_id for owners in lease_owners(node).values() for cid, _ in owners)
    rc, out = gc(node, [])
    assert rc == 0, out
    node.assert_clean(by_gc)
    assert quarantined(node) == sorted([by_del.container_id, by_gc.container_id])


def test_wrong_typed_records_never_crash_the_readers(tmp_path):
    """Whatever a cache file holds, reading it is a record, None (quarantined) or CorruptCache."""
    from hypothesis import given, settings
    from hypothesis import strategies as st

    from metacni.meta import delegate_cache

    json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=5),
                               lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8),
                                                                                            inner, max_size=3),
                               max_leaves=8)
    keys = ["kind", "containerId", "ifName", "networkName", "config", "netns", "cniArgs", "capabilityArgs",
            "result", "delegates", "pod"]

    @settings(max_examples=300, deadline=None)
    @given(st.dictionaries(st.sampled_from(keys), json_values), st.booleans())
    def check(fields: dict[str, Any], ours: bool) -> None:
        cache = ResultCache(tmp_path)
        record = dict(fields, kind="cniCacheV1" if ours else fields.get("kind"))
        (tmp_path / "results").mkdir(exist_ok=True)
        (tmp_path / "results" / "n-cid-eth0").write_text(json.dumps(record))
        entry = cache.read("n", "cid", "eth0")
        assert entry is None or isinstance(entry.cni_args, list)
        cache.entries()
        record = dict(fields, kind=delegate_cache.KIND, containerId="cid")
        (tmp_path / "cid").write_text(json.dumps(record))
        with contextlib.suppress(delegate_cache.CorruptCache):
            delegate_cache.read(tmp_path, "cid")

    check()


# ------------------------------------------------------------------------------ static pods (#14 item 6)
class PeriodicGC:
    """The runtime's libcni cache as the daemon's periodic GC reads it, a runner on it, and
    real pod lookups against the fake API."""

    def __init__(self, node) -> None:
        from metacni.meta.kube import view_for

        self.node = node
        self.cache = ResultCache(node.root / "runtime-cache")
        self.runner = ChainRunner(node.invoker, [CNI_PATH], self.cache)
        self.net = network_list_from_bytes(json.dumps(node.meta_conf()).encode(), "00-metacni.conf")
        view = view_for(node.meta_conf())
        assert view is not None
        self.view = view

    def rt(self, pod, uid: str):
        from metacni.engine.chain import RuntimeConf
        from metacni.spec.args import CniArgs

        return RuntimeConf(pod.container_id, pod.path, "eth0", CniArgs.parse(f"{pod.cni_args};K8S_POD_UID={uid}"))

    def add(self, pod, uid: str) -> None:
        from metacni.kernel.netns import enter

        with enter(self.node.path):
            self.runner.add(self.net, self.rt(pod, uid))

    def delete(self, pod, uid: str) -> None:
        from metacni.kernel.netns import enter

        with enter(self.node.path):
            self.runner.delete(self.net, self.rt(pod, uid))

    def collect(self) -> int:
        from metacni.daemon import gc as daemon_gc
        from metacni.kernel.netns import enter

        with enter(self.node.path):
            return daemon_gc.collect(self.runner, self.cache, self.view.get_pod, grace=0)

    def cached(self) -> list[str]:
        return sorted(e.container_id for e in self.cache.entries())

    def remove_sandbox(self, pod) -> None:
        """What the runtime does when it removes a sandbox (here after a lost DEL): the netns
        goes, and with it the pod's end of the veth."""
        from metacni_testkit.netns import run

        run("ip", "netns", "del", pod.netns)


def _pod(node, namespace: str, name: str):
    from metacni_testkit.netns import tag
    from metacni_testkit.nodes import Pod

    return Pod(namespace, name, node.box.netns("mcpod"), tag("cid", 12))


def test_periodic_gc_spares_a_static_pod_whose_mirror_has_another_uid(node):
    """kubelet passes a static pod's own UID in CNI_ARGS; the API only has its mirror pod, with
    another UID and ``kubernetes.io/config.source: file``. The daemon's periodic GC (real pod
    lookups against the fake API) keeps it, and still reclaims a recreated ordinary pod once
    the runtime removed the old sandbox."""
    import uuid

    static_uid, mirror_uid, old_uid, new_uid = (uuid.uuid4().hex for _ in range(4))
    node.api.add_pod("kube-system", "etcd-node-1", node_name="node-1", uid=mirror_uid, annotations={
        "kubernetes.io/config.source": "file", "kubernetes.io/config.mirror": static_uid,
        "kubernetes.io/config.hash": static_uid})
    node.api.add_pod("default", "recreated", node_name="node-1", uid=old_uid)
    static = _pod(node, "kube-system", "etcd-node-1")
    recreated = _pod(node, "default", "recreated")
    pgc = PeriodicGC(node)
    pgc.add(static, static_uid)
    pgc.add(recreated, old_uid)
    node.api.delete_pod("default", "recreated")
    node.api.add_pod("default", "recreated", node_name="node-1", uid=new_uid)
    pgc.remove_sandbox(recreated)

    corrupt = node.root / "runtime-cache" / "results" / f"{pgc.net.name}-cidcorrupt-eth0"
    corrupt.write_text(json.dumps({"kind": "cniCacheV1", "containerId": "cidcorrupt", "ifName": "eth0",
                                   "networkName": pgc.net.name, "cniArgs": "x", "result": 5}))

    assert pgc.collect() == 1
    assert not corrupt.exists()  # a wrong-typed entry is moved aside and GC goes on
    assert [p.name.rsplit(".", 1)[0] for p in Path(pgc.cache.corrupt_dir).iterdir()] == [corrupt.name]
    assert all(cid != recreated.container_id for owners in lease_owners(node).values() for cid, _ in owners)
    assert node.pod_links(static) == {"lo", "eth0"}
    assert ping(static.path, "10.88.0.1")
    assert pgc.cached() == [static.container_id]

    pgc.delete(static, static_uid)
    node.assert_clean(static)


def test_periodic_gc_never_collects_a_sandbox_whose_netns_exists(node):
    """A static pod whose mirror pod is missing from the API (kubelet recreates it lazily) and a
    pod deleted from the API with ``--force`` while kubelet still runs it: however long the API
    has not shown them, their network namespaces exist, so GC keeps them and they still pass
    traffic. Once the runtime removes a sandbox (its DEL lost), GC reclaims that one."""
    import uuid

    static_uid, mirror_uid, forced_uid = (uuid.uuid4().hex for _ in range(3))
    node.api.add_pod("kube-system", "static-web-node-1", node_name="node-1", uid=mirror_uid, annotations={
        "kubernetes.io/config.source": "file", "kubernetes.io/config.mirror": static_uid})
    static = _pod(node, "kube-system", "static-web-node-1")
    node.api.add_pod("default", "forced", node_name="node-1", uid=forced_uid)
    forced = _pod(node, "default", "forced")
    pgc = PeriodicGC(node)
    pgc.add(static, static_uid)
    pgc.add(forced, forced_uid)
    node.api.delete_pod("kube-system", static.name)  # the mirror is gone; kubelet runs the pod on
    node.api.delete_pod("default", "forced")
    assert node.api.get_pod("default", "forced") is None and pgc.view.get_pod("kube-system", static.name) is None

    for _ in range(2):  # grace 0: every pass judges them stale by the API alone
        assert pgc.collect() == 0
    assert pgc.cached() == sorted([static.container_id, forced.container_id])
    for pod in (static, forced):
        assert node.pod_links(pod) == {"lo", "eth0"}
        assert ping(pod.path, "10.88.0.1")
    assert {cid for owners in lease_owners(node).values() for cid, _ in owners} >= {static.container_id,
                                                                                      forced.container_id}

    pgc.remove_sandbox(forced)
    assert pgc.collect() == 1
    assert pgc.cached() == [static.container_id]
    assert all(cid != forced.container_id for owners in lease_owners(node).values() for cid, _ in owners)
    assert node.pod_links(static) == {"lo", "eth0"} and ping(static.path, "10.88.0.1")

    pgc.delete(static, static_uid)
    node.assert_clean(static)
