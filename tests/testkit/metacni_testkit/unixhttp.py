"""Test-side client of the daemon's unix socket (protocol v1, metacni/daemon/protocol.py).

Raw on purpose: the abuse tests need to send partial heads, lying lengths and nothing at all,
so requests are bytes the test controls and answers are parsed by the standard library's
``http.client.HTTPResponse``.
"""

from __future__ import annotations

import http.client
import json
import os
import socket
from dataclasses import dataclass
from typing import Any

from metacni.daemon.protocol import PROTOCOL, encode_request


@dataclass
class Answer:
    status: int
    headers: dict[str, str]  # lower-case names
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def connect(path: str | os.PathLike[str], timeout: float = 10.0) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.connect(os.fspath(path))  # AF_UNIX addresses are str or bytes, not PathLike
    except OSError:
        sock.close()
        raise
    return sock


def head(method: str, target: str, headers: dict[str, str] | None = None, length: int | None = None) -> bytes:
    lines = [f"{method} {target} HTTP/1.1", "Host: metacni", "Connection: close"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    if length is not None:
        lines.append(f"Content-Length: {length}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def read_answer(sock: socket.socket) -> Answer:
    """Parse one answer from ``sock`` (http.client raises on a connection closed unanswered)."""
    resp = http.client.HTTPResponse(sock)
    resp.begin()
    body = resp.read()
    return Answer(resp.status, {k.lower(): v for k, v in resp.getheaders()}, body)


def request(path: str | os.PathLike[str], method: str, target: str, body: bytes = b"",
            headers: dict[str, str] | None = None, timeout: float = 60.0) -> Answer:
    with connect(path, timeout) as sock:
        sock.sendall(head(method, target, headers, len(body) if body or method == "POST" else None) + body)
        return read_answer(sock)


def cni_headers(protocol: str | None = str(PROTOCOL)) -> dict[str, str]:
    headers = {"Content-Type": "application/json"}
    if protocol is not None:
        headers["Metacni-Protocol"] = protocol
    return headers


def cni(path: str | os.PathLike[str], env: dict[str, str], stdin: bytes, *, protocol: str | None = str(PROTOCOL),
        timeout: float = 60.0) -> Answer:
    """POST /cni as the shim does."""
    return request(path, "POST", "/cni", encode_request(env, stdin), cni_headers(protocol), timeout)


def send_cni(path: str | os.PathLike[str], env: dict[str, str], stdin: bytes, timeout: float = 60.0) -> socket.socket:
    """Send a POST /cni and return the open connection without reading the answer."""
    sock = connect(path, timeout)
    body = encode_request(env, stdin)
    sock.sendall(head("POST", "/cni", cni_headers(), len(body)) + body)
    return sock
