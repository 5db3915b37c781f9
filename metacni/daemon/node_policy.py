"""The daemon's check of a CNI call's stdin against the node's own metacni config.

The runtime passes the conf file it read; the daemon holds the node's config (the
``00-metacni.conf`` in its conf dir, which it generates or was given). As Multus thick does
(``overrideCNIConfigWithServerConfig``), every node-only key of a ``type: metacni`` stdin is
taken from the node's config: per-call keys (name, cniVersion, runtimeConfig, args,
prevResult, capabilities) stay as sent, every other key is the node's, and a key the node's
config lacks is dropped. Differences are logged. Why override rather than refuse:
docs/design/1404-daemon-node-config.md.

Without a readable node config in the conf dir the stdin is served as sent: it is then the
only node config there is (the runtime read it from the node's conf dir).
"""

from __future__ import annotations

import json
import logging
import os
import threading
from pathlib import Path
from typing import Any

from metacni.meta.trust import META_TYPE, PER_CALL_KEYS

log = logging.getLogger("metacni.daemon.node_policy")


class NodeConfigPolicy:
    """Rewrites meta stdin to the node's config; reads the node's file once per change."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._stamp: tuple[int, int, int] | None = None
        self._conf: dict[str, Any] | None = None

    def node_config(self) -> dict[str, Any] | None:
        """The node's meta config (the metacni plugin of a conflist, with the list's name and
        version), or None when there is no readable one."""
        try:
            st = self.path.stat()
        except OSError:
            return None
        stamp = (st.st_mtime_ns, st.st_size, st.st_ino)
        with self._lock:
            if stamp != self._stamp:
                self._stamp, self._conf = stamp, _load(self.path)
            return self._conf

    def apply(self, stdin: bytes) -> bytes:
        """``stdin`` with its node-only keys replaced by the node's (unchanged when it is not a
        metacni config, not JSON -- skel reports that -- or there is no node config)."""
        try:
            conf = json.loads(stdin)
        except ValueError:
            return stdin
        if not isinstance(conf, dict) or conf.get("type") != META_TYPE:
            return stdin
        node = self.node_config()
        if node is None:
            return stdin
        differing = sorted(k for k in set(conf) | set(node)
                           if k not in PER_CALL_KEYS and conf.get(k) != node.get(k))
        if not differing:
            return stdin
        log.warning("stdin config differs from the node's config %s in %s; using the node's values",
                    self.path, ", ".join(differing))
        out = {k: v for k, v in conf.items() if k in PER_CALL_KEYS}
        out.update({k: v for k, v in node.items() if k not in PER_CALL_KEYS})
        return json.dumps(out).encode()


def _load(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_bytes())
    except (OSError, ValueError) as exc:
        log.warning("node config %s unreadable (%s); stdin configs are served as sent", path, exc)
        return None
    if not isinstance(data, dict):
        return None
    if isinstance(data.get("plugins"), list):
        plugins = [p for p in data["plugins"] if isinstance(p, dict) and p.get("type") == META_TYPE]
        if not plugins:
            return None
        return {"name": data.get("name"), "cniVersion": data.get("cniVersion"), **plugins[0]}
    return data if data.get("type") == META_TYPE else None
