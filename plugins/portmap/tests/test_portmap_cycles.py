"""100 ADD/DEL cycles with random mappings: the node's rule set ends byte-identical.

Half of the DELs carry no runtimeConfig (and no prevResult), a quarter run after the pod
namespace was deleted. Plugins run in-process against a synthetic prevResult, so the
test stays fast; traffic is covered by the *_traffic tests.
"""

from __future__ import annotations

import random

import pytest

from metacni.spec.results import Result
from metacni_testkit.firewall_testbed import Testbed, prime_legacy, ruleset
from metacni_testkit.netns import netns_path, run

CYCLES = 100


def _result(ns: str, n: int, v6: bool) -> Result:
    ips = [{"address": f"10.88.{n // 250}.{n % 250 + 2}/16", "interface": 1, "gateway": "10.88.0.1"}]
    if v6:
        ips.append({"address": f"fd00:88::{n + 2:x}/64", "interface": 1})
    return Result.model_validate(
        {
            "cniVersion": "1.0.0",
            "interfaces": [{"name": "vethx"}, {"name": "eth0", "sandbox": netns_path(ns)}],
            "ips": ips,
        }
    )


def _mappings(rng: random.Random) -> list[dict]:
    out = []
    for _ in range(rng.randint(1, 20)):  # >15 ports exercises multiport chunking
        m = {
            "hostPort": rng.randint(1, 65535),
            "containerPort": rng.randint(1, 65535),
            "protocol": rng.choice(["tcp", "udp", "sctp", "TCP"]),
        }
        if rng.random() < 0.2:
            m["hostIP"] = rng.choice(["0.0.0.0", "192.0.2.1"])
        out.append(m)
    return out


@pytest.mark.parametrize("backend", ["nftables", "iptables"])
def test_portmap_masq_forward_cycles_leave_no_rule(box, tmp_path, backend):
    tb = Testbed(box).setup(str(tmp_path))
    run("ip", "addr", "add", "10.88.0.1/16", "dev", "lo", netns=tb.node)  # a route towards the "pods"
    if backend == "iptables":
        prime_legacy(tb.node)
        run(
            "iptables-legacy",
            "-t",
            "nat",
            "-A",
            "POSTROUTING",
            "-s",
            "10.99.0.0/16",
            "-j",
            "RETURN",
            netns=tb.node,
        )
    else:
        run(
            "nft",
            "-f",
            "-",
            netns=tb.node,
            input="add table inet operator\n"
            "add chain inet operator opforward { type filter hook forward priority 0; policy accept; }\n",
        )
    run(
        "iptables-nft" if backend == "nftables" else "iptables-legacy", "-P", "FORWARD", "DROP", netns=tb.node
    )
    before = ruleset(tb.node)
    rng = random.Random(4)
    for n in range(CYCLES):
        cid = f"cycle-{n}-{rng.getrandbits(32):08x}"
        ns = tb.box.netns("mccyc")
        v6 = rng.random() < (0.5 if backend == "nftables" else 0.1)
        prev = _result(ns, n, v6)
        steps = [
            (
                "portmap",
                {
                    "backend": backend,
                    "capabilities": {"portMappings": True},
                    "runtimeConfig": {"portMappings": _mappings(rng)},
                    "masqAll": rng.random() < 0.3,
                },
            ),
            ("masq", {"backend": backend, "nonMasqueradeCIDRs": ["10.96.0.0/12"]}),
            ("forward", {"backend": backend}),
        ]
        for plugin, conf in steps:
            tb.call(plugin, "ADD", conf, cid, netns_path(ns), prev)
        if n % 10 == 0:
            for plugin, conf in steps:
                tb.call(plugin, "CHECK", conf, cid, netns_path(ns), prev)
        bare = n % 2 == 0
        if n % 4 == 1:
            run("ip", "netns", "del", ns)
            tb.box.namespaces.remove(ns)
        for plugin, conf in reversed(steps):
            if bare:
                conf = {"backend": backend}
            tb.call(plugin, "DEL", conf, cid, netns_path(ns), None if bare else prev)
        if ns in tb.box.namespaces:
            run("ip", "netns", "del", ns)
            tb.box.namespaces.remove(ns)
    assert ruleset(tb.node) == before
