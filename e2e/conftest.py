"""e2e fixtures: a simulated three-node cluster (metacni.sim) per firewall backend."""

from __future__ import annotations

import fcntl
import json
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from metacni.sim import Cluster, ClusterPlan
from metacni_testkit.netns import is_root, run

sys.path.insert(0, str(Path(__file__).resolve().parent))
import hostguard  # noqa: E402

STATE_DIR = "/run/metacni-sim"
BACKENDS = ["nftables", "iptables"]


def make_cluster(backend: str, nodes: int = 3) -> Cluster:
    return Cluster(ClusterPlan.make(prefix="mcsim", state_dir=STATE_DIR, nodes=nodes, backend=backend))


@pytest.fixture(scope="session", autouse=True)
def machine_paths_untouched() -> Iterator[None]:
    """Fails the session (an error at the last test's teardown) if the machine's container
    storage or CNI dirs (hostguard.GUARDED) changed while e2e tests ran: their runtimes must
    write only the tests' own dirs (and nothing else on the machine may write those either)."""
    before = hostguard.snapshot()
    yield
    touched = hostguard.changes(before, hostguard.snapshot())
    if touched:
        pytest.fail("the machine's own container/CNI paths changed during the e2e tests "
                    "(e2e/hostguard.py):\n" + "\n".join(touched[:50]))


@pytest.fixture
def demo_turn() -> Iterator[None]:
    """One ``metacni demo`` test at a time on this machine (a flock on a file in the temp dir):
    the demos share the ``mcdemo`` names and /run/metacni-demo, and test_demo compares the host's
    demo namespaces and state before and after each run."""
    with open(Path(tempfile.gettempdir()) / "metacni-e2e-demo.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


@pytest.fixture(scope="module", params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="module")
def cluster(backend: str) -> Iterator[Cluster]:
    if not is_root():
        pytest.skip("needs root for network namespaces")
    with make_cluster(backend) as c:
        yield c


def addrs(netns: str, ifname: str) -> list[str]:
    data = json.loads(run("ip", "-j", "addr", "show", "dev", ifname, netns=netns).stdout or "[]")
    return [a["local"] for e in data for a in e.get("addr_info", []) if a.get("family") == "inet"]


def mac(netns: str, ifname: str) -> str:
    [entry] = json.loads(run("ip", "-j", "link", "show", "dev", ifname, netns=netns).stdout)
    return str(entry["address"])
