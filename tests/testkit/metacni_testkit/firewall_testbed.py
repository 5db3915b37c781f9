"""Test support: a node namespace with an "outside" peer, pods, and a real echo service.

Used by the portmap/masq/forward plugin tests. Everything is created inside namespaces a
:class:`metacni_testkit.netns.Sandbox` owns, so the host is never touched; plugin code runs
with the calling thread entered into the node namespace.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Any

from metacni.engine.invoke import Invoker
from metacni.engine.registry import Registry
from metacni.engine.request import Invocation
from metacni.kernel import netns
from metacni.spec.args import CniArgs
from metacni.spec.results import Result
from metacni_testkit.netns import Sandbox, netns_path, run

NODE_IP, OUTSIDE_IP = "192.0.2.1", "192.0.2.2"
POD_SUBNET = "10.88.0.0/24"
CNI_PATH = ("/usr/lib/cni",)

ECHO_SERVER = r"""
import socket, sys, threading
port = int(sys.argv[1])
t = socket.socket(socket.AF_INET6 if ':' in sys.argv[2] else socket.AF_INET, socket.SOCK_STREAM)
t.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
t.bind((sys.argv[2], port)); t.listen(16)
u = socket.socket(socket.AF_INET6 if ':' in sys.argv[2] else socket.AF_INET, socket.SOCK_DGRAM)
u.bind((sys.argv[2], port))
def tcp():
    while True:
        c, a = t.accept()
        try:
            c.recv(64); c.sendall(a[0].encode())
        finally:
            c.close()
def udp():
    while True:
        d, a = u.recvfrom(64); u.sendto(a[0].encode(), a)
threading.Thread(target=tcp, daemon=True).start()
threading.Thread(target=udp, daemon=True).start()
print('ready', flush=True)
sys.stdin.read()
"""

ECHO_CLIENT = r"""
import socket, sys
proto, host, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
fam = socket.AF_INET6 if ':' in host else socket.AF_INET
s = socket.socket(fam, socket.SOCK_STREAM if proto == 'tcp' else socket.SOCK_DGRAM)
s.settimeout(1.0)
if proto == 'tcp':
    s.connect((host, port)); s.sendall(b'hi'); print(s.recv(64).decode())
else:
    s.sendto(b'hi', (host, port)); print(s.recvfrom(64)[0].decode())
"""


@dataclass
class EchoServer:
    proc: subprocess.Popen[str]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=10)


def start_echo(ns: str, port: int, bind: str = "0.0.0.0", deadline: float = 10.0) -> EchoServer:
    proc = subprocess.Popen(
        ["ip", "netns", "exec", ns, sys.executable, "-c", ECHO_SERVER, str(port), bind],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()  # blocks until the sockets are bound (or the process died)
    if line.strip() != "ready":
        proc.kill()
        raise RuntimeError(f"echo server in {ns} failed: {proc.stderr.read() if proc.stderr else ''}")
    return EchoServer(proc)


def ask(ns: str, proto: str, host: str, port: int, deadline: float = 8.0) -> str:
    """The peer address the echo server saw, retrying until ``deadline`` seconds pass."""
    end = time.monotonic() + deadline
    last = ""
    while True:
        res = run(
            sys.executable, "-c", ECHO_CLIENT, proto, host, str(port), netns=ns, check=False, timeout=10
        )
        if res.returncode == 0 and res.stdout.strip():
            return res.stdout.strip()
        lines = res.stderr.strip().splitlines()
        last = lines[-1] if lines else ""
        if time.monotonic() > end:
            raise AssertionError(f"{proto} {host}:{port} from {ns} failed: {last}")
        time.sleep(0.1)


def unreachable(ns: str, proto: str, host: str, port: int) -> bool:
    res = run(sys.executable, "-c", ECHO_CLIENT, proto, host, str(port), netns=ns, check=False, timeout=10)
    return res.returncode != 0


_COUNTERS = re.compile(r"\[\d+:\d+\]")


def ruleset(node: str) -> str:
    """nft ruleset and legacy iptables (v4+v6) of ``node``, without timestamps or counters."""
    parts = [run("nft", "list", "ruleset", netns=node).stdout]
    for tool in ("iptables-legacy-save", "ip6tables-legacy-save"):
        out = run(tool, netns=node).stdout
        parts.append("\n".join(_COUNTERS.sub("", ln) for ln in out.splitlines() if not ln.startswith("#")))
    return "\n----\n".join(parts)


def prime_legacy(node: str) -> None:
    """Instantiate the legacy nat and filter tables, as on any node that uses iptables.

    Reading a legacy table creates it in the netns for good; a node on the iptables backend
    has them already, so rule-set comparisons start from there.
    """
    for tool in ("iptables-legacy", "ip6tables-legacy"):
        for table in ("nat", "filter"):
            run(tool, "-t", table, "-S", netns=node)


@dataclass
class Testbed:
    __test__ = False  # not a pytest test class

    box: Sandbox
    node: str = ""
    outside: str = ""
    data_dir: str = ""
    network: str = "podnet"
    bridge: str = "mcbr0"
    pods: dict[str, Result] = field(default_factory=dict)
    invoker: Invoker = field(
        default_factory=lambda: Invoker(Registry(disabled=frozenset({"bridge", "host-local"})))
    )

    def setup(self, data_dir: str, backend: str | None = None, forward: str | None = None) -> Testbed:
        """The node and outside namespaces, linked; ``backend="iptables"`` primes the legacy tables
        (:func:`prime_legacy`); ``forward="DROP"`` sets that FORWARD policy with the backend's tool."""
        self.data_dir = data_dir
        self.node = self.box.netns("mcnode")
        self.outside = self.box.netns("mcout")
        run(
            "ip",
            "link",
            "add",
            "vnode",
            "type",
            "veth",
            "peer",
            "name",
            "vout",
            "netns",
            self.outside,
            netns=self.node,
        )
        run("ip", "addr", "add", f"{NODE_IP}/24", "dev", "vnode", netns=self.node)
        run("ip", "link", "set", "vnode", "up", netns=self.node)
        run("ip", "addr", "add", f"{OUTSIDE_IP}/24", "dev", "vout", netns=self.outside)
        run("ip", "link", "set", "vout", "up", netns=self.outside)
        run("sysctl", "-qw", "net.ipv4.ip_forward=1", netns=self.node)
        if backend == "iptables":
            prime_legacy(self.node)
        if forward:
            tool = "iptables-legacy" if backend == "iptables" else "iptables-nft"
            run(tool, "-P", "FORWARD", forward, netns=self.node)
        return self

    # ------------------------------------------------------------------ plugin calls
    def bridge_conf(self) -> dict[str, Any]:
        return {
            "cniVersion": "1.0.0",
            "name": self.network,
            "type": "bridge",
            "bridge": self.bridge,
            "isGateway": True,
            "hairpinMode": True,
            "ipam": {
                "type": "host-local",
                "subnet": POD_SUBNET,
                "dataDir": self.data_dir,
                "routes": [{"dst": "0.0.0.0/0"}],
            },
        }

    def call(
        self,
        plugin: str,
        command: str,
        conf: dict[str, Any],
        container_id: str,
        pod_ns: str,
        prev: Result | None = None,
        ifname: str = "eth0",
    ) -> Result | None:
        conf = {"cniVersion": "1.0.0", "name": self.network, "type": plugin, **conf}
        inv = Invocation(
            command=command,
            container_id=container_id,
            netns=pod_ns,
            ifname=ifname,
            args=CniArgs(),
            cni_path=CNI_PATH,
        )
        with netns.enter(netns_path(self.node)):
            return self.invoker.invoke(plugin, conf, inv, prev_result=prev)

    def add_pod(self, name: str) -> tuple[str, Result]:
        ns = self.box.netns("mcpod")
        result = self.call("bridge", "ADD", self.bridge_conf(), name, netns_path(ns))
        assert result is not None
        self.pods[name] = result
        return ns, result

    def del_pod(self, name: str, ns: str) -> None:
        self.call("bridge", "DEL", self.bridge_conf(), name, netns_path(ns), prev=self.pods.pop(name, None))


def pod_ip(result: Result) -> str:
    return result.ips[0].address.split("/")[0]


def dump(obj: Any) -> str:
    return json.dumps(obj, indent=1, default=str)
