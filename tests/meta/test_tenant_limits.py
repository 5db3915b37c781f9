"""Bounds on what one annotation may ask for, and checks that fail closed (security review,
2026-12-03): every requested address is looked up in the kernel and every port mapping becomes
rules, so their number is bounded; and when the kernel cannot say whether an address is the
node's, the tenant checks refuse (code 11, try again) instead of taking "unknown" for "no"."""

from __future__ import annotations

import json
import subprocess
import sys

from metacni.meta.selection_policy import MAX_IPS, MAX_PORT_MAPPINGS
from metacni.spec.errors import Code
from metacni_testkit.nodes import NETWORKS
from metacni_testkit.nodes import Node as MetaNode
from tests.meta.test_tenant_threats import _port_nad


def test_annotation_port_mappings_and_addresses_are_bounded(node: MetaNode):
    _port_nad(node)
    mappings = [{"hostPort": 20000 + i, "containerPort": 80} for i in range(MAX_PORT_MAPPINGS + 1)]
    ips = [f"10.89.8.{10 + i}/24" for i in range(MAX_IPS + 1)]
    cases = (({"portMappings": mappings}, ["portMappings", f"at most {MAX_PORT_MAPPINGS}"]),
             ({"ips": ips}, ["addresses requested", f"at most {MAX_IPS}"]),
             ({"ips": ips[:MAX_IPS], "cni-args": {"ips": ips[MAX_IPS:]}}, [f"at most {MAX_IPS}"]))
    for i, (selection, words) in enumerate(cases):
        pod = node.pod(f"p{i}", annotations={NETWORKS: json.dumps([{"name": "net-p", **selection}])})
        err = node.cni_error("ADD", pod)
        assert err.code == Code.INVALID_CONFIG, err
        for word in (f"pod default/p{i}", "default/net-p", *words):
            assert word in err.details, (word, err.details)
        node.assert_clean(pod)
    # at the bounds, it works
    bounded = [{"name": "net-p", "portMappings": mappings[:MAX_PORT_MAPPINGS]}]
    pod = node.pod("bounded", annotations={NETWORKS: json.dumps(bounded)})
    node.cni("ADD", pod)
    node.cni("DEL", pod)
    node.assert_clean(pod)


PROBE = """
import json, os, resource
from ipaddress import ip_address
from metacni.kernel.routes import is_node_address, node_addresses
from metacni.spec.errors import CNIError
out = []
highest = max(int(fd) for fd in os.listdir("/proc/self/fd"))
resource.setrlimit(resource.RLIMIT_NOFILE, (highest, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
for call in (lambda: is_node_address(ip_address("127.0.0.1")), node_addresses):
    try:
        out.append(["answer", repr(call())])
    except CNIError as exc:
        out.append(["error", int(exc.code), exc.details])
print(json.dumps(out))
"""


def test_node_address_checks_fail_closed_when_the_kernel_cannot_answer():
    """A real fault: no file descriptor left for the netlink socket (RLIMIT_NOFILE). Before, the
    checks took that for "not the node's address" and let a pod claim it."""
    done = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=60, check=True)
    answers = json.loads(done.stdout)
    assert [a[0] for a in answers] == ["error", "error"], answers
    for _, code, details in answers:
        assert code == Code.TRY_AGAIN_LATER and "could not tell" in details, details
