"""A plain HTTP/1.1 client on the daemon's unix socket (protocol v1, metacni/daemon/protocol.py):
how the demo's simulated nodes (and the test kit) ask a daemon whether it is ready.
Operators use curl (``curl --unix-socket /run/metacni/metacni.sock http://metacni/readyz``)."""

from __future__ import annotations

import http.client
import json
import os
import socket
from collections.abc import Mapping
from typing import Any


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str | os.PathLike[str], timeout: float) -> None:
        super().__init__("metacni", timeout=timeout)
        self.unix_path = os.fspath(path)  # AF_UNIX addresses are str or bytes, not PathLike

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self.unix_path)
        except OSError:
            sock.close()
            raise
        self.sock = sock


def unix_http(path: str | os.PathLike[str], method: str, target: str, body: bytes | None = None,
              headers: Mapping[str, str] | None = None, timeout: float = 5.0) -> tuple[int, dict[str, str], bytes]:
    """One request on the unix socket ``path`` -> (status, headers lower-cased, body); OSError
    when nothing listens there."""
    conn = _UnixConnection(path, timeout)
    try:
        conn.request(method, target, body=body, headers=dict(headers or {}))
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def readiness(path: str | os.PathLike[str], timeout: float = 2.0) -> dict[str, Any]:
    """The daemon's readiness state (GET /readyz); OSError when it is not serving."""
    _, _, body = unix_http(path, "GET", "/readyz", timeout=timeout)
    return dict(json.loads(body))


def status_written(path: str | os.PathLike[str], timeout: float = 10.0) -> bool:
    """Wait until the daemon has written every network-status it queued (GET
    /readyz?waitStatusWritten); False when some are still pending after ``timeout``."""
    _, _, body = unix_http(path, "GET", f"/readyz?waitStatusWritten={timeout:g}", timeout=timeout + 10.0)
    return int(json.loads(body).get("networkStatusPending", 0)) == 0
