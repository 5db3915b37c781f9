"""The node: one test-made network namespace standing for a Kubernetes node, with its own
directory tree, and the ways tests drive metacni on it.

One class serves every kind of test (issue #17: it used to exist four times):

- plugin tests call a plugin in-process from the calling thread entered into the node
  (:meth:`Node.invoke`, with :meth:`Node.conf` for a bridge + host-local config);
- meta-plugin tests add the fake API server inside the node (:meth:`Node.start_api`), the
  primary network and NADs (:meth:`Node.write_primary`, :meth:`Node.add_nad`), pods in the API
  (:meth:`Node.pod`) and call the meta plugin (:meth:`Node.cni`, :meth:`Node.exec_binary`);
- daemon tests install the shim as every plugin's binary (:attr:`Node.bin_dir`), start
  ``metacni daemon`` in the node (:meth:`Node.start_daemon`) and drive it as libcni would
  (:meth:`Node.runner` in :func:`run_in_node`).

The ``node`` fixture (:mod:`metacni_testkit.plugin`) yields a bare node; a test folder that needs
more overrides it by requesting it (``def node(node): node.start_api(); ...``). Everything the node
starts is stopped by :meth:`Node.close`; its namespaces belong to the test's ``box``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from metacni.daemon.install import install_shim
from metacni.engine.cache import ResultCache
from metacni.engine.chain import ChainRunner, RuntimeConf
from metacni.engine.invoke import Invoker
from metacni.engine.registry import Registry
from metacni.engine.request import Invocation
from metacni.kernel.netns import enter
from metacni.meta.install import write_node_config
from metacni.sim.fakeapi import FakeAPIServer
from metacni.sim.traffic import in_netns
from metacni.spec.args import CniArgs
from metacni.spec.config import network_list_from_bytes
from metacni.spec.errors import CNIError
from metacni.spec.results import Result
from metacni_testkit.daemon import DaemonProc, install_console_plugin, start_daemon
from metacni_testkit.netns import Sandbox, link_names, links, netns_path, tag

CNI_PATH = "/usr/lib/cni"  # the reference plugins (Debian's containernetworking-plugins)
PLUGIN_TYPES = ("bridge", "host-local", "portmap", "masq", "forward")
MODES = ("standalone", "daemon")
NODE_NAME = "node-1"
PRIMARY = "primary-net"
PRIMARY_SUBNET = "10.88.0"
NETWORK_STATUS = "k8s.v1.cni.cncf.io/network-status"
NETWORKS = "k8s.v1.cni.cncf.io/networks"


@dataclass
class Pod:
    """A pod: its API identity, its own network namespace and a container id."""

    namespace: str
    name: str
    netns: str  # netns name
    container_id: str

    @property
    def path(self) -> str:
        return netns_path(self.netns)

    @property
    def cni_args(self) -> str:
        return (f"IgnoreUnknown=1;K8S_POD_NAMESPACE={self.namespace};K8S_POD_NAME={self.name};"
                f"K8S_POD_INFRA_CONTAINER_ID={self.container_id}")


@dataclass
class Node:
    """A node namespace ``name`` (owned by ``box``) and its files under ``root``.

    ``mode`` is a label for daemon-mode tests ("standalone" or "daemon"); the API server and the
    daemon exist only once started, and :meth:`close` stops both."""

    box: Sandbox
    name: str
    root: Path
    mode: str = "in-process"
    api: FakeAPIServer | None = None
    daemon: DaemonProc | None = None
    invoker: Invoker = field(default_factory=lambda: Invoker(Registry()))

    def __post_init__(self) -> None:
        self.conf_dir.mkdir(parents=True, exist_ok=True)

    # -- layout ---------------------------------------------------------------------------
    @property
    def path(self) -> str:
        return netns_path(self.name)

    @property
    def conf_dir(self) -> Path:
        return self.root / "net.d"

    @property
    def cni_dir(self) -> Path:
        return self.root / "cni"

    @property
    def data_dir(self) -> Path:
        """host-local's data dir for the configs this node writes."""
        return self.root / "ipam"

    @property
    def kubeconfig(self) -> Path:
        return self.root / "kubeconfig"

    @property
    def meta_conf_path(self) -> Path:
        return self.conf_dir / "00-metacni.conf"

    @property
    def bin_dir(self) -> Path:
        """The node's CNI bin dir, every in-tree plugin's name installed on first use: the static
        shim (forwarding to the daemon) in "daemon" mode, else ``metacni`` the console script
        (running the call in-process)."""
        bin_dir = self.root / "bin"
        if not bin_dir.is_dir():
            self.install(*PLUGIN_TYPES, bin_dir=bin_dir)
        return bin_dir

    def install(self, *aliases: str, bin_dir: Path | None = None) -> None:
        """The mode's executable as ``metacni`` in the bin dir, and as each of ``aliases``."""
        target = bin_dir or self.bin_dir
        if self.mode == "daemon":
            install_shim(target, aliases=aliases)
        else:
            install_console_plugin(target, aliases=aliases)

    @property
    def socket(self) -> str:
        return self.daemon.socket if self.daemon else str(self.root / "no-daemon.sock")

    def meta_conf(self) -> dict[str, Any]:
        return dict(json.loads(self.meta_conf_path.read_text()))

    # -- lifecycle ------------------------------------------------------------------------
    def start_api(self) -> FakeAPIServer:
        """The fake API server, listening inside the node namespace, with this node registered
        and a kubeconfig at :attr:`kubeconfig`."""
        with enter(self.path):
            self.api = FakeAPIServer().start()  # listening socket born in the node netns
        self.api.write_kubeconfig(self.kubeconfig)
        self.api.add_node(NODE_NAME, f"{PRIMARY_SUBNET}.0/24", "192.168.0.11")
        return self.api

    def start_daemon(self, *args: str, env: dict[str, str] | None = None) -> DaemonProc:
        """``metacni daemon`` in the node namespace (``--no-api`` unless ``--kubeconfig`` is given)."""
        api = [] if "--kubeconfig" in args else ["--no-api"]
        self.daemon = start_daemon(self.root / "daemon", netns=self.name, env=env,
                                   args=[*api, "--cache-dir", str(self.root / "daemon-cache"),
                                         "--pending-dir", str(self.cni_dir / "pending-del"),
                                         "--conf-dir", str(self.conf_dir), *args])
        return self.daemon

    def close(self) -> None:
        """Kill the daemon and stop the API server, if started."""
        if self.daemon is not None:
            self.daemon.kill()
        if self.api is not None:
            self.api.stop()

    # -- one plugin, in-process -------------------------------------------------------------
    def conf(self, **overrides: Any) -> dict[str, Any]:
        """A bridge + host-local config (dual-stack unless ``ranges``/``subnet4`` say otherwise)."""
        subnet4 = overrides.pop("subnet4", "10.77.0.0/24")
        ranges = overrides.pop("ranges", [[{"subnet": subnet4}], [{"subnet": "fd77::/64"}]])
        conf: dict[str, Any] = {
            "cniVersion": "1.0.0", "name": overrides.pop("name", tag("net")), "type": "bridge",
            "bridge": "cni0", "isDefaultGateway": True,
            "ipam": {"type": "host-local", "dataDir": str(self.data_dir), "ranges": ranges},
        }
        conf.update(overrides)
        return conf

    def invoke(self, command: str, conf: dict[str, Any], pod: Pod | str, cid: str, ifname: str = "eth0",
               invoker: Invoker | None = None, prev: Result | None = None) -> Result | None:
        """Run ``conf``'s plugin for ``command`` from the calling thread entered into the node."""
        netns = pod.path if isinstance(pod, Pod) else pod
        inv = Invocation(command=command, container_id=cid, netns=netns, ifname=ifname, cni_path=(CNI_PATH,))
        with enter(self.path):
            return (invoker or self.invoker).invoke(conf["type"], conf, inv, prev_result=prev)

    # -- meta plugin: networks ------------------------------------------------------------
    def bridge_conf(self, name: str, bridge: str, subnet: str, *, gateway: bool = False,
                    version: str = "1.0.0") -> dict[str, Any]:
        conf: dict[str, Any] = {"cniVersion": version, "name": name, "type": "bridge", "bridge": bridge,
                                "isGateway": True,
                                "ipam": {"type": "host-local", "dataDir": str(self.data_dir),
                                         "ranges": [[{"subnet": subnet}]]}}
        if gateway:
            conf["isDefaultGateway"] = True
        return conf

    def write_primary(self, version: str = "1.0.0", **meta_options: Any) -> None:
        """The primary conflist (bridge + portmap) and ``00-metacni.conf`` in :attr:`conf_dir`."""
        primary = self.bridge_conf(PRIMARY, "cni0", f"{PRIMARY_SUBNET}.0/24", gateway=True, version=version)
        conflist = {"cniVersion": version, "name": PRIMARY,
                    "plugins": [{k: v for k, v in primary.items() if k not in ("cniVersion", "name")},
                                {"type": "portmap", "capabilities": {"portMappings": True}}]}
        (self.conf_dir / "10-primary.conflist").write_text(json.dumps(conflist))
        options: dict[str, Any] = {
            "cni_dir": str(self.cni_dir), "bin_dir": CNI_PATH, "kubeconfig": str(self.kubeconfig),
            "extra": {"apiTimeout": 5, "apiConnectTimeout": 2, "apiRetries": 0}}
        options.update(meta_options)
        # The tests' NADs keep their leases under the test's own root (the node policy allows
        # only /var/lib/cni/networks by default, metacni/meta/trust.py).
        options["extra"] = {"allowedPaths": {"dataDir": [str(self.data_dir)]}, **options["extra"]}
        write_node_config(self.conf_dir, **options)

    def add_nad(self, name: str, bridge: str, subnet: str, namespace: str = "default",
                extra_plugins: list[dict[str, Any]] | None = None, **overrides: Any) -> None:
        assert self.api is not None, "start_api() first"
        conf = self.bridge_conf(name, bridge, subnet)
        conf.update(overrides)
        if extra_plugins:
            plugin = {k: v for k, v in conf.items() if k not in ("cniVersion", "name")}
            conf = {"cniVersion": "1.0.0", "name": name, "plugins": [plugin, *extra_plugins]}
        self.api.add_nad(namespace, name, conf)

    def two_nads(self) -> None:
        self.add_nad("net-a", "br-a", "10.89.1.0/24")
        self.add_nad("net-b", "br-b", "10.89.2.0/24")

    # -- pods -----------------------------------------------------------------------------
    def pod(self, name: str = "web", namespace: str = "default", annotations: dict[str, str] | None = None,
            *, in_api: bool = True) -> Pod:
        """A new pod namespace; also a pod object in the API when the node has one and ``in_api``."""
        if in_api and self.api is not None:
            self.api.add_pod(namespace, name, node_name=NODE_NAME, annotations=annotations)
        return Pod(namespace, name, self.box.netns("mcpod"), tag("cid", 12))

    # -- meta plugin: running it ----------------------------------------------------------
    def invocation(self, verb: str, pod: Pod, ifname: str = "eth0") -> Invocation:
        return Invocation(command=verb, container_id=pod.container_id, netns=pod.path, ifname=ifname,
                          args=CniArgs.parse(pod.cni_args), cni_path=(CNI_PATH,))

    def cni(self, verb: str, pod: Pod, *, runtime_config: dict[str, Any] | None = None,
            conf: dict[str, Any] | None = None) -> dict[str, Any] | None:
        """Run the meta plugin in-process, as skel would after the runtime exec'd it."""
        config = dict(conf or self.meta_conf())
        if runtime_config:
            config["runtimeConfig"] = runtime_config
        with enter(self.path):
            result = self.invoker.invoke("metacni", config, self.invocation(verb, pod))
        return result.to_wire() if result is not None else None

    def cni_error(self, verb: str, pod: Pod, **kwargs: Any) -> CNIError:
        with pytest.raises(CNIError) as info:
            self.cni(verb, pod, **kwargs)
        return info.value

    def exec_binary(self, verb: str, pod: Pod, *, conf: dict[str, Any] | None = None,
                    runtime_config: dict[str, Any] | None = None) -> tuple[int, dict[str, Any] | None]:
        """Run the installed ``metacni`` executable as a runtime would (subprocess in the node)."""
        config = dict(conf or self.meta_conf())
        if runtime_config:
            config["runtimeConfig"] = runtime_config
        return self.exec_metacni(config, dict(os.environ, CNI_COMMAND=verb, CNI_CONTAINERID=pod.container_id,
                                              CNI_NETNS=pod.path, CNI_IFNAME="eth0", CNI_ARGS=pod.cni_args,
                                              CNI_PATH=CNI_PATH))

    def exec_metacni(self, config: dict[str, Any], env: dict[str, str]) -> tuple[int, dict[str, Any] | None]:
        """The installed ``metacni`` console script in the node, ``config`` on stdin, exactly ``env``:
        its exit status and the JSON document it printed (None if it printed nothing)."""
        metacni = shutil.which("metacni")
        assert metacni, "the metacni console script is not installed"
        proc = subprocess.run(["ip", "netns", "exec", self.name, metacni], input=json.dumps(config).encode(),
                              env=env, capture_output=True, timeout=120)
        out = proc.stdout.decode().strip()
        return proc.returncode, (json.loads(out) if out else None)

    def sh(self, *argv: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        """Run a command inside the node namespace (``ip netns exec``); never raises on its status."""
        return subprocess.run(["ip", "netns", "exec", self.name, *argv], capture_output=True, text=True,
                              env=env, timeout=120)

    def api_up(self) -> None:
        """Restart a stopped API server on its old port, inside the node."""
        assert self.api is not None
        with enter(self.path):
            self.api.start()

    # -- a libcni-style runtime -----------------------------------------------------------
    def conflist(self, *, name: str | None = None, subnet: str = "10.78.0.0/24", portmap: bool = False,
                 version: str = "1.1.0") -> bytes:
        """A bridge (+ portmap) conflist whose plugins reach this node's daemon, if any."""
        plugins: list[dict[str, Any]] = [{
            "type": "bridge", "bridge": "cni0", "isGateway": True, "daemonSocket": self.socket,
            "cniDir": str(self.cni_dir),  # a DEL the shim cannot deliver goes to its pending-del
            "ipam": {"type": "host-local", "dataDir": str(self.data_dir), "ranges": [[{"subnet": subnet}]]},
        }]
        if portmap:
            plugins.append({"type": "portmap", "capabilities": {"portMappings": True}, "daemonSocket": self.socket,
                            "cniDir": str(self.cni_dir)})
        return json.dumps({"cniVersion": version, "name": name or tag("fn"), "plugins": plugins}).encode()

    def runner(self) -> ChainRunner:
        """libcni's behaviour: every plugin exec'd from :attr:`bin_dir`, results cached."""
        registry = Registry()
        registry.disabled = frozenset(registry.types())  # every plugin is exec'd: the shim
        return ChainRunner(Invoker(registry, timeout=120), [str(self.bin_dir)], ResultCache(self.root / "cache"))

    # -- observations ---------------------------------------------------------------------
    def leases(self, network: str) -> list[str]:
        """host-local's lease files (addresses) of ``network``; not its lock, last-reserved or temp files."""
        directory = self.data_dir / network
        if not directory.is_dir():
            return []
        return sorted(p.name for p in directory.iterdir() if p.name[0].isdigit() or ":" in p.name)

    def all_leases(self) -> dict[str, list[str]]:
        if not self.data_dir.is_dir():
            return {}
        return {d.name: self.leases(d.name) for d in self.data_dir.iterdir() if self.leases(d.name)}

    def result_cache_files(self) -> list[str]:
        results = self.cni_dir / "results"
        return sorted(p.name for p in results.iterdir()) if results.is_dir() else []

    def veths(self) -> list[str]:
        return sorted(ln["ifname"] for ln in links(self.name) if ln.get("link_type") == "ether"
                      and ln["ifname"].startswith("veth"))

    def pod_links(self, pod: Pod) -> set[str]:
        return link_names(pod.netns)

    def network_status(self, pod: Pod) -> list[dict[str, Any]]:
        """The pod's network-status as the API has it; a daemon writes it after the ADD has
        answered, so its writer is waited for first."""
        assert self.api is not None
        if self.daemon is not None:
            assert self.daemon.status_written(), "the daemon still has network-status writes pending"
        stored = self.api.get_pod(pod.namespace, pod.name)
        assert stored is not None
        text = (stored["metadata"].get("annotations") or {}).get(NETWORK_STATUS)
        assert text, f"no {NETWORK_STATUS} on {pod.namespace}/{pod.name}"
        return list(json.loads(text))

    def assert_clean(self, pod: Pod) -> None:
        """Nothing of the pod left: no interface, lease, veth, cache entry. In daemon mode DEL
        answers with the veth detached and its deletion pending in the daemon's link reaper
        (plugins/bridge/detach.py), so the links are awaited (bounded) rather than expected at once."""
        deadline = time.monotonic() + 30
        while (self.pod_links(pod) != {"lo"} or self.veths()) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert self.pod_links(pod) == {"lo"}
        assert self.all_leases() == {}
        assert self.veths() == []
        assert self.result_cache_files() == []
        assert not (self.cni_dir / pod.container_id).exists()


def run_in_node(node: Node, fn: Any) -> Any:
    """Run ``fn`` in a thread inside the node netns; exec'd shims inherit that namespace."""
    return in_netns(node.path, fn)


def load(raw: bytes) -> Any:
    return network_list_from_bytes(raw, "test", is_list=True)


def rt(cid: str, pod: str, **kw: Any) -> RuntimeConf:
    return RuntimeConf(container_id=cid, netns=pod, ifname="eth0", **kw)
