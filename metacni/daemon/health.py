"""HTTP for kubelet probes and Prometheus: /healthz, /readyz and /metrics on one TCP port.

stdlib ``http.server`` rather than prometheus-client's own server, because the probes need
answers that depend on daemon state (readyz turns 500 once SIGTERM arrives).
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

log = logging.getLogger(__name__)


class HealthServer:
    def __init__(self, host: str, port: int, exposition: Callable[[], bytes],
                 healthy: Callable[[], bool], ready: Callable[[], dict[str, Any]]) -> None:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                path = self.path.split("?", 1)[0]
                if path == "/metrics":
                    outer._send(self, 200, outer.exposition(), "text/plain; version=0.0.4; charset=utf-8")
                elif path == "/healthz":
                    ok = outer.healthy()
                    outer._send(self, 200 if ok else 500, b"ok\n" if ok else b"unhealthy\n", "text/plain")
                elif path == "/readyz":
                    state = outer.ready()
                    body = json.dumps(state).encode() + b"\n"
                    outer._send(self, 200 if state.get("ready") else 500, body, "application/json")
                else:
                    outer._send(self, 404, b"not found\n", "text/plain")

            do_POST = do_GET  # noqa: N815

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                log.debug("http: " + format, *args)

        self.exposition = exposition
        self.healthy = healthy
        self.ready = ready
        self.httpd = ThreadingHTTPServer((host, port), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="health", daemon=True)

    @staticmethod
    def _send(h: BaseHTTPRequestHandler, code: int, body: bytes, ctype: str) -> None:
        h.send_response(code)
        h.send_header("Content-Type", ctype)
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.write(body)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
