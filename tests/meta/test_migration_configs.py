"""Real-world Multus configs converted (:func:`metacni.meta.multus_keys.convert`) give the pod the
interfaces Multus would (issue #18): thin with ``delegates``, thick (shim stdin + daemon config),
``clusterNetwork`` as a NAD name, and OpenShift's ``auxiliaryCNIChainName`` shim config.

The configs are Multus' own examples (deployments/multus-daemonset*.yml, docs/thick-plugin.md)
and OpenShift's shim stdin, with host paths moved into the test's node. What Multus would do
follows docs/multus.md 1.1, 1.3 and 2.5: primary on CNI_IFNAME, then ``delegates[1:]`` (thin,
no clusterNetwork) or ``defaultNetworks``, then the annotation's networks, ``net<position>``.
"""

from __future__ import annotations

import json
import os

import pytest

from metacni.meta import multus_keys

PRIMARY = "primary-net"

THIN = {"cniVersion": "0.3.1", "name": "multus-cni-network", "type": "multus",
        "kubeconfig": "/etc/cni/net.d/multus.d/multus.kubeconfig", "confDir": "/etc/cni/multus/net.d",
        "cniDir": "/var/lib/cni/multus", "binDir": "/opt/cni/bin", "logFile": "/var/log/multus.log",
        "logLevel": "debug", "logToStderr": False,
        "logOptions": {"maxAge": 5, "maxSize": 100, "maxBackups": 5, "compress": True},
        "capabilities": {"portMappings": True}, "readinessindicatorfile": "",
        "namespaceIsolation": False, "globalNamespaces": "default,kube-system",
        "delegates": ["<primary>", "<side>"]}
THICK_SHIM = {"cniVersion": "0.3.1", "name": "multus-cni-network", "type": "multus-shim",
              "logLevel": "verbose", "logToStderr": True, "clusterNetwork": "/host/etc/cni/net.d/10-primary.conflist"}
THICK_DAEMON = {"chrootDir": "/hostroot", "confDir": "/host/etc/cni/net.d", "logToStderr": True,
                "logLevel": "verbose", "logFile": "/tmp/multus.log", "binDir": "/opt/cni/bin",
                "cniDir": "/var/lib/cni/multus", "socketDir": "/host/run/multus/", "cniVersion": "0.3.1",
                "cniConfigDir": "/host/etc/cni/net.d", "multusConfigFile": "auto",
                "multusAutoconfigDir": "/host/etc/cni/net.d", "kubeconfig": "/etc/cni/net.d/multus.d/multus.kubeconfig"}
NAD_PRIMARY = {"cniVersion": "0.3.1", "name": "multus-cni-network", "type": "multus",
               "kubeconfig": "/etc/cni/net.d/multus.d/multus.kubeconfig", "clusterNetwork": "cluster-primary",
               "multusNamespace": "kube-system", "defaultNetworks": ["net-d"], "systemNamespaces": ["kube-system"]}
OPENSHIFT = {"auxiliaryCNIChainName": "vendor-cni-chain", "binDir": "/var/lib/cni/bin",
             "clusterNetwork": "/host/run/multus/cni/net.d/10-primary.conflist", "cniVersion": "0.3.1",
             "daemonSocketDir": "/run/multus/socket", "globalNamespaces": "default,openshift-multus",
             "logLevel": "verbose", "logToStderr": True, "name": "multus-cni-network",
             "namespaceIsolation": True, "type": "multus-shim"}

CASES = {
    # thin, delegates: delegates[0] on eth0, delegates[1] net1, the annotation's net-a net2
    "thin-delegates": (THIN, None, ["eth0", "net1", "net2"], [PRIMARY, "side", "default/net-a"]),
    # thick: clusterNetwork a file; the annotation's net-a is net1
    "thick": (THICK_SHIM, THICK_DAEMON, ["eth0", "net1"], [PRIMARY, "default/net-a"]),
    # clusterNetwork a NAD name (kube-system), then defaultNetworks net-d, then net-a
    "cluster-network-nad": (NAD_PRIMARY, None, ["eth0", "net1", "net2"],
                            ["kube-system/cluster-primary", "kube-system/net-d", "default/net-a"]),
    # the auxiliary chain adds no interface (Multus runs passthru + plugins of its directory)
    "openshift-auxiliary": (OPENSHIFT, None, ["eth0", "net1"], [PRIMARY, "default/net-a"]),
}


def _localize(conf: dict, node) -> dict:
    """Host paths of the example moved into the node; the node's test-only keys added."""
    own = node.meta_conf()
    out = dict(conf)
    for key in ("kubeconfig", "confDir", "cniDir", "binDir"):
        out[key] = own[key]
    if "logFile" in out:
        out["logFile"] = str(node.root / "multus.log")
    if str(out.get("clusterNetwork", "")).startswith("/"):
        out["clusterNetwork"] = str(node.conf_dir / os.path.basename(out["clusterNetwork"]))
    primary = json.loads((node.conf_dir / "10-primary.conflist").read_text())
    side = node.bridge_conf("side", "br-side", "10.94.1.0/24")
    if "delegates" in out:
        out["delegates"] = [{"<primary>": primary, "<side>": side}[d] for d in out["delegates"]]
    for key in ("allowedPaths", "apiTimeout", "apiConnectTimeout", "apiRetries"):
        if key in own:
            out[key] = own[key]
    return out


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_converted_multus_config_gives_the_interfaces_multus_would(node, case):
    conf, daemon, ifnames, labels = case
    node.add_nad("net-a", "br-a", "10.89.1.0/24")
    node.add_nad("cluster-primary", "br-cp", "10.95.1.0/24", namespace="kube-system", isDefaultGateway=True)
    node.add_nad("net-d", "br-d", "10.95.2.0/24", namespace="kube-system")
    converted = _localize(multus_keys.convert(conf, daemon), node)
    assert converted["type"] == "metacni"
    assert not set(converted) & {k for k, v in multus_keys.MULTUS_KEYS.items() if not v.honoured}

    pod = node.pod(annotations={"k8s.v1.cni.cncf.io/networks": "net-a"})
    result = node.cni("ADD", pod, conf=converted)
    assert result is not None and result["cniVersion"] == "0.3.1"
    assert node.pod_links(pod) == {"lo", *ifnames}
    status = node.network_status(pod)
    assert [(s["name"], s["interface"]) for s in status] == list(zip(labels, ifnames, strict=True))
    node.cni("DEL", pod, conf=converted)
    node.assert_clean(pod)


def test_thick_daemon_keys_win_over_the_shim():
    converted = multus_keys.convert({**THICK_SHIM, "logLevel": "error"}, THICK_DAEMON)
    assert converted["logLevel"] == "verbose" and converted["confDir"] == "/host/etc/cni/net.d"
    assert "chrootDir" not in converted and "socketDir" not in converted
