"""Shared pieces of the daemon-mode tests: a node netns, the plugins' binaries, and a libcni-style
driver (ChainRunner with every plugin exec'd) that runs the same chain in daemon mode (the static
shim installed as every plugin, forwarding to the daemon) or standalone mode (``metacni`` the
console script as every plugin, running the call in-process)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from metacni.daemon.install import install_shim
from metacni.engine.cache import ResultCache
from metacni.engine.chain import ChainRunner, RuntimeConf
from metacni.engine.invoke import Invoker
from metacni.engine.registry import Registry
from metacni.spec.config import network_list_from_bytes
from metacni.testing.daemon import DaemonProc, install_console_plugin, start_daemon
from metacni.testing.netns import Sandbox, netns_path, tag

PLUGIN_TYPES = ("bridge", "host-local", "portmap", "masq", "forward")
MODES = ("standalone", "daemon")


@dataclass
class Node:
    box: Sandbox
    name: str
    work: Path
    mode: str
    daemon: DaemonProc | None = None
    bin_dir: Path = field(init=False)

    def __post_init__(self) -> None:
        self.bin_dir = self.work / "bin"
        self.install(*PLUGIN_TYPES)

    def install(self, *aliases: str) -> None:
        """The mode's executable as ``metacni`` in bin_dir, and as each of ``aliases``."""
        if self.mode == "daemon":
            install_shim(self.bin_dir, aliases=aliases)
        else:
            install_console_plugin(self.bin_dir, aliases=aliases)

    @property
    def path(self) -> str:
        return netns_path(self.name)

    @property
    def socket(self) -> str:
        return self.daemon.socket if self.daemon else str(self.work / "no-daemon.sock")

    def start_daemon(self, *args: str) -> DaemonProc:
        api = [] if "--kubeconfig" in args else ["--no-api"]
        self.daemon = start_daemon(self.work / "daemon", netns=self.name,
                                   args=[*api, "--cache-dir", str(self.work / "daemon-cache"),
                                         "--conf-dir", str(self.work / "conf"), *args])
        return self.daemon

    def conflist(self, *, name: str | None = None, subnet: str = "10.78.0.0/24", portmap: bool = False,
                 version: str = "1.1.0") -> bytes:
        plugins: list[dict[str, Any]] = [{
            "type": "bridge", "bridge": "cni0", "isGateway": True, "daemonSocket": self.socket,
            "ipam": {"type": "host-local", "dataDir": str(self.work / "ipam"), "ranges": [[{"subnet": subnet}]]},
        }]
        if portmap:
            plugins.append({"type": "portmap", "capabilities": {"portMappings": True}, "daemonSocket": self.socket})
        return json.dumps({"cniVersion": version, "name": name or tag("fn"), "plugins": plugins}).encode()

    def runner(self) -> ChainRunner:
        registry = Registry()
        registry.disabled = frozenset(registry.types())  # every plugin is exec'd: the shim
        return ChainRunner(Invoker(registry, timeout=120), [str(self.bin_dir)], ResultCache(self.work / "cache"))

    def leases(self, network: str) -> list[str]:
        d = self.work / "ipam" / network
        if not d.is_dir():
            return []
        return sorted(p.name for p in d.iterdir() if p.name[0].isdigit() or ":" in p.name)


def run_in_node(node: Node, fn: Any) -> Any:
    """Run ``fn`` in a thread inside the node netns; exec'd shims inherit that namespace."""
    from plugins.bridge.testkit import in_netns

    return in_netns(node.path, fn)


def load(raw: bytes) -> Any:
    return network_list_from_bytes(raw, "test", is_list=True)


def rt(cid: str, pod: str, **kw: Any) -> RuntimeConf:
    return RuntimeConf(container_id=cid, netns=pod, ifname="eth0", **kw)
