"""HTTP for kubelet probes and Prometheus: /healthz, /readyz and /metrics on one TCP port.

Served by the same bounded server as the CNI socket (:mod:`metacni.daemon.httpserve`: read and
write timeouts, a bounded pool, an accept loop that survives its errors), on ``host`` — a daemon
setting, ``127.0.0.1`` by default (docs/operations.md says why). The answers depend on daemon
state (readyz turns 500 once SIGTERM arrives; healthz turns 500 when the CNI socket's accept
loop died), so this is not prometheus-client's own server.
"""

from __future__ import annotations

import json
import logging
import socket
from collections.abc import Callable
from typing import Any

from .httpserve import Events, HTTPServer, Limits, Reply, Request

log = logging.getLogger(__name__)
_PATHS = ("/metrics", "/healthz", "/readyz")


class HealthRoutes:
    def __init__(self, exposition: Callable[[], bytes], healthy: Callable[[], bool],
                 ready: Callable[[], dict[str, Any]]) -> None:
        self.exposition = exposition
        self.healthy = healthy
        self.ready = ready

    def head(self, method: str, path: str, headers: dict[str, str]) -> Reply | None:
        if path not in _PATHS:
            return Reply(404, b"not found\n", "text/plain")
        return None if method in ("GET", "POST") else Reply(405, b"GET only\n", "text/plain")

    def inline(self, method: str, path: str) -> bool:
        return path != "/metrics"  # the exposition walks every series: a worker's job

    def received(self, request: Request) -> None:
        return None

    def answered(self, request: Request) -> None:
        return None

    def handle(self, request: Request) -> Reply:
        if request.path == "/metrics":
            return Reply(200, self.exposition(), "text/plain; version=0.0.4; charset=utf-8")
        if request.path == "/healthz":
            ok = self.healthy()
            return Reply(200 if ok else 500, b"ok\n" if ok else b"unhealthy\n", "text/plain")
        state = self.ready()
        return Reply(200 if state.get("ready") else 500, json.dumps(state).encode() + b"\n")

    def unavailable(self, why: str) -> Reply:
        return Reply(503, f"unavailable: {why}\n".encode(), "text/plain")

    def too_large(self, limit: int) -> Reply:
        return Reply(413, b"request too large\n", "text/plain")


class HealthServer:
    def __init__(self, host: str, port: int, exposition: Callable[[], bytes],
                 healthy: Callable[[], bool], ready: Callable[[], dict[str, Any]],
                 limits: Limits | None = None, events: Events | None = None) -> None:
        self.limits = limits or Limits(workers=2, queue_size=16, max_connections=64)
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((host, port))
            sock.listen(self.limits.backlog)
        except BaseException:
            sock.close()
            raise
        self.sock = sock
        self.port = int(sock.getsockname()[1])
        self.http = HTTPServer(sock, HealthRoutes(exposition, healthy, ready), self.limits, name="health",
                               events=events)

    def start(self) -> None:
        self.http.start()
        log.info("serving /healthz, /readyz, /metrics", extra={"address": self.sock.getsockname()})

    def stop(self) -> None:
        self.http.stop(1.0)
        self.sock.close()
