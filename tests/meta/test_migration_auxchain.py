"""Multus' ``auxiliaryCNIChainName`` (issue #18 item 3), checked against Multus' ``CmdAdd``
(pkg/multus/multus.go) and docs/configuration.md: a conflist named after the chain, headed by
``passthru``, with the plugins of ``<dir of clusterNetwork>/<chain>/*.conf``, run last on
``net<index>`` for every pod, undone by DEL; no plugin there: no chain; ``clusterNetwork`` not a
path: the ADD fails.

The chain's plugin is ``aux-rec``, a script in a per-test CNI_PATH dir: it records what it got
and, as a vendor tuning chain would, sets ``arp_filter`` on the pod's eth0 (ADD) and clears it (DEL).
"""

from __future__ import annotations

import json
import shutil
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from metacni.meta import trust
from metacni.spec.errors import CNIError, Code
from metacni_testkit.nodes import Node as MetaNode
from metacni_testkit.nodes import Pod

CHAIN = "vendor-cni-chain"

RECORDER = f"""#!{sys.executable}
import json, os, subprocess, sys
conf = json.load(sys.stdin)
cmd, cid, ifname, netns = (os.environ.get(k, "") for k in ("CNI_COMMAND", "CNI_CONTAINERID", "CNI_IFNAME",
                                                            "CNI_NETNS"))
links = subprocess.run(["nsenter", f"--net={{netns}}", "ip", "-j", "link"], capture_output=True, text=True).stdout
conf["seenLinks"] = sorted(link["ifname"] for link in json.loads(links or "[]"))
conf["seenIfname"] = ifname
with open(os.path.join(conf["recordDir"], f"{{cmd}}-{{cid}}.json"), "w") as handle:
    json.dump(conf, handle)
if cmd in ("ADD", "DEL") and "eth0" in conf["seenLinks"]:
    value = "1" if cmd == "ADD" else "0"
    subprocess.run(["nsenter", f"--net={{netns}}", "sysctl", "-qw", f"net.ipv4.conf.eth0.arp_filter={{value}}"],
                   check=True)
if cmd == "ADD":
    print(json.dumps(conf["prevResult"]))
"""


class AuxNode:
    """The meta node plus a bin dir holding ``aux-rec`` and the chain's directory."""

    def __init__(self, node: MetaNode, root: Path) -> None:
        self.node, self.root = node, root
        self.bin_dir, self.records = root / "bin", root / "records"
        for d in (self.bin_dir, self.records):
            d.mkdir(parents=True)
        script = self.bin_dir / "aux-rec"
        script.write_text(RECORDER)
        script.chmod(script.stat().st_mode | stat.S_IXUSR)
        self.primary_file = node.conf_dir / "10-primary.conflist"
        self.chain_dir = node.conf_dir / CHAIN

    def add_chain_plugin(self, file: str = "50-rec.conf") -> None:
        self.chain_dir.mkdir(exist_ok=True)
        (self.chain_dir / file).write_text(json.dumps({"name": "rec", "type": "aux-rec",
                                                       "recordDir": str(self.records)}))

    def conf(self, **extra: Any) -> dict[str, Any]:
        conf = self.node.meta_conf()
        # binDir comes before the runtime's CNI_PATH (the reference plugins)
        conf.update(auxiliaryCNIChainName=CHAIN, clusterNetwork=str(self.primary_file), binDir=str(self.bin_dir))
        conf.update(extra)
        return conf

    def cni(self, verb: str, pod: Pod, **extra: Any) -> dict[str, Any] | None:
        return self.node.cni(verb, pod, conf=self.conf(**extra))

    def recorded(self, verb: str, pod: Pod) -> dict[str, Any] | None:
        path = self.records / f"{verb}-{pod.container_id}.json"
        return dict(json.loads(path.read_text())) if path.exists() else None

    def arp_filter(self, pod: Pod) -> str:
        return subprocess.run(["nsenter", f"--net={pod.path}", "cat", "/proc/sys/net/ipv4/conf/eth0/arp_filter"],
                              capture_output=True, text=True, check=True).stdout.strip()


@pytest.fixture
def aux(node: MetaNode) -> Iterator[AuxNode]:
    root = Path(tempfile.mkdtemp(prefix="mcaux-"))
    try:
        yield AuxNode(node, root)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def test_chain_runs_last_with_what_multus_passes_and_del_undoes_it(aux: AuxNode) -> None:
    aux.add_chain_plugin()
    pod = aux.node.pod("web")

    result = aux.cni("ADD", pod)

    got = aux.recorded("ADD", pod)
    assert got is not None
    # Multus: {"cniVersion": <meta's>, "name": <chain>, "plugins": [passthru, ...files]}, net<index>
    assert got["name"] == CHAIN and got["cniVersion"] == aux.conf()["cniVersion"]
    assert got["seenIfname"] == "net1"
    assert "eth0" in got["seenLinks"]  # after the primary
    prev = got["prevResult"]  # passthru's empty result (Go omits its empty lists too)
    assert prev["cniVersion"] == got["cniVersion"] and not prev.get("interfaces") and not prev.get("ips")
    assert aux.arp_filter(pod) == "1"
    assert result is not None and [i["name"] for i in result["interfaces"] if i.get("sandbox")] == ["eth0"]
    assert aux.node.pod_links(pod) == {"lo", "eth0"}  # the chain adds no interface
    assert [e["interface"] for e in aux.node.network_status(pod)] == ["eth0"]  # nor a status entry

    aux.cni("CHECK", pod)
    assert aux.recorded("CHECK", pod) is not None

    aux.cni("DEL", pod)
    deleted = aux.recorded("DEL", pod)
    assert deleted is not None and deleted["seenIfname"] == "net1" and deleted["name"] == CHAIN
    assert "eth0" in deleted["seenLinks"]  # undone before the primary goes (DEL runs in reverse)
    assert deleted["prevResult"]["cniVersion"] == got["cniVersion"]  # the cached result of its ADD
    assert not deleted["prevResult"].get("interfaces")
    aux.node.assert_clean(pod)


def test_chain_index_follows_the_pods_networks(aux: AuxNode) -> None:
    aux.add_chain_plugin()
    aux.node.two_nads()
    pod = aux.node.pod("web", annotations={"k8s.v1.cni.cncf.io/networks": "net-a, net-b"})

    aux.cni("ADD", pod)

    got = aux.recorded("ADD", pod)
    assert got is not None and got["seenIfname"] == "net3"  # Multus: len(delegates) before the append
    assert {"eth0", "net1", "net2"} <= set(got["seenLinks"])
    assert [e["interface"] for e in aux.node.network_status(pod)] == ["eth0", "net1", "net2"]
    aux.cni("DEL", pod)
    assert aux.recorded("DEL", pod) is not None
    aux.node.assert_clean(pod)


@pytest.mark.parametrize("make_dir", [False, True], ids=["no-dir", "empty-dir"])
def test_missing_chain_runs_nothing_as_multus(aux: AuxNode, make_dir: bool) -> None:
    if make_dir:
        aux.chain_dir.mkdir()
        (aux.chain_dir / "notes.txt").write_text("not a .conf")
    pod = aux.node.pod("web")

    aux.cni("ADD", pod)

    assert aux.recorded("ADD", pod) is None
    assert aux.node.pod_links(pod) == {"lo", "eth0"}
    assert aux.arp_filter(pod) == "0"  # what the chain tests set is not the primary's doing
    aux.cni("DEL", pod)
    assert aux.recorded("DEL", pod) is None
    aux.node.assert_clean(pod)


@pytest.mark.parametrize("cluster", [None, "primary-net"], ids=["unset", "bare-name"])
def test_cluster_network_not_a_path_is_refused(aux: AuxNode, cluster: str | None) -> None:
    aux.add_chain_plugin()
    pod = aux.node.pod("web")
    extra: dict[str, Any] = {"clusterNetwork": cluster}

    with pytest.raises(CNIError) as info:
        aux.cni("ADD", pod, **extra)

    assert info.value.code == Code.INVALID_CONFIG
    assert "clusterNetwork" in info.value.details and "auxiliaryCNIChainName" in info.value.details
    assert aux.recorded("ADD", pod) is None
    aux.node.assert_clean(pod)


@pytest.mark.parametrize("name", ["../etc", "-x", 7], ids=["path", "dash", "number"])
def test_invalid_chain_name_is_refused(aux: AuxNode, name: Any) -> None:
    pod = aux.node.pod("web")
    with pytest.raises(CNIError) as info:
        aux.cni("ADD", pod, auxiliaryCNIChainName=name)
    assert info.value.code == Code.INVALID_CONFIG
    assert "auxiliaryCNIChainName" in info.value.details
    aux.node.assert_clean(pod)


def test_invalid_plugin_file_is_refused_and_rolled_back(aux: AuxNode) -> None:
    aux.chain_dir.mkdir()
    (aux.chain_dir / "10-bad.conf").write_text(json.dumps({"name": "no-type"}))
    pod = aux.node.pod("web")
    with pytest.raises(CNIError) as info:
        aux.cni("ADD", pod)
    assert info.value.code == Code.INVALID_CONFIG
    assert CHAIN in info.value.details and "type" in info.value.details
    aux.node.assert_clean(pod)


def test_failing_chain_rolls_back_the_pod(aux: AuxNode) -> None:
    aux.chain_dir.mkdir()
    (aux.chain_dir / "10-missing.conf").write_text(json.dumps({"name": "gone", "type": "no-such-plugin"}))
    pod = aux.node.pod("web")
    with pytest.raises(CNIError) as info:
        aux.cni("ADD", pod)
    assert CHAIN in info.value.details
    aux.node.assert_clean(pod)


def test_key_is_node_only() -> None:
    assert trust.is_node_only("auxiliaryCNIChainName")


def test_reference_tuning_plugin_as_in_multus_docs(aux: AuxNode) -> None:
    """Multus' docs/configuration.md example: a ``tuning`` conf in the chain's directory (the
    reference plugin, sysctl on the pod's eth0) runs for the pod, after passthru."""
    aux.chain_dir.mkdir()
    (aux.chain_dir / "mytuning.conf").write_text(json.dumps(
        {"name": "mytuning", "type": "tuning", "sysctl": {"net.ipv4.conf.eth0.arp_filter": "1"}}))
    pod = aux.node.pod("web")
    aux.cni("ADD", pod)
    assert aux.arp_filter(pod) == "1"
    aux.cni("DEL", pod)
    aux.node.assert_clean(pod)
