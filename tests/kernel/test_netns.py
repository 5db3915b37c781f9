"""``metacni.kernel.netns.is_netns``: what the daemon's GC takes as "this sandbox still exists"."""

from __future__ import annotations

import os
from pathlib import Path

from metacni.kernel.netns import is_netns
from metacni_testkit.netns import Sandbox, netns_path, run


def test_a_live_network_namespace_and_nothing_else(box: Sandbox, tmp_path: Path) -> None:
    name = box.netns("mcisns")
    path = netns_path(name)
    assert is_netns(path)
    assert is_netns("/proc/self/ns/net")  # a running process's namespace
    assert not is_netns("/proc/self/ns/mnt")  # a namespace, not a network one
    plain = tmp_path / "leftover"
    plain.write_text("")  # what an unmounted /run/netns entry leaves behind
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)  # never opened (it would block a reader without a writer)
    for other in (str(plain), str(fifo), "/dev/null", str(tmp_path), str(tmp_path / "absent"), ""):
        assert not is_netns(other), other
    run("ip", "netns", "del", name)  # the runtime removes the sandbox
    assert not is_netns(path)
