"""The unix-socket side of the daemon: framed requests from the shim (see metacni.shim), one per
connection. The handler sees ``{"op", "env", "stdin"}`` and returns ``{"exit", "stdout", "stderr"}``.

The socket lives in a 0700 directory and is itself 0600 (root-only): whoever can talk to it can
configure any pod's network. It is bound under a temporary name and renamed into place, so a
shim never reaches a socket whose permissions are not yet set.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
from collections.abc import Callable
from typing import Any

from metacni.shim import OP_CNI, OP_STATUS, encode_reply, read_request

log = logging.getLogger(__name__)
Handler = Callable[[dict[str, Any]], dict[str, Any]]


def _bytes(value: Any) -> bytes:
    if value is None:
        return b""
    return value if isinstance(value, bytes) else str(value).encode()


class UnixServer:
    def __init__(self, path: str, handler: Handler, backlog: int = 256) -> None:
        self.path = path
        self.handler = handler
        self.backlog = backlog
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._active: set[threading.Thread] = set()
        self._cond = threading.Condition()
        self._inode = 0

    def start(self) -> None:
        directory = os.path.dirname(self.path) or "."
        os.makedirs(directory, mode=0o700, exist_ok=True)
        os.chmod(directory, 0o700)
        tmp = f"{self.path}.{os.getpid()}.tmp"
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.bind(tmp)
        os.chmod(tmp, 0o600)
        sock.listen(self.backlog)
        os.replace(tmp, self.path)
        self._inode = os.stat(self.path).st_ino
        self._sock = sock
        self._thread = threading.Thread(target=self._accept_loop, args=(sock,), name="cni-accept", daemon=True)
        self._thread.start()
        log.info("serving CNI requests", extra={"socket": self.path})

    def _accept_loop(self, sock: socket.socket) -> None:
        while True:
            try:
                conn, _ = sock.accept()
            except OSError:
                return  # closed by stop()
            t = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            with self._cond:
                self._active.add(t)
            t.start()

    def _serve(self, conn: socket.socket) -> None:
        try:
            with conn:
                try:
                    op, env, stdin = read_request(conn)
                except (OSError, ValueError) as exc:
                    log.warning("bad request frame: %s", exc)
                    return
                name = {OP_CNI: "cni", OP_STATUS: "status"}.get(op, op.decode("latin-1"))
                reply = self.handler({"op": name, "env": env, "stdin": stdin})
                try:
                    conn.sendall(encode_reply(int(reply.get("exit", 1)), _bytes(reply.get("stdout")),
                                              _bytes(reply.get("stderr"))))
                except OSError as exc:  # the shim gave up (timeout, killed): nothing to tell it
                    log.warning("could not send the reply: %s", exc)
        finally:
            with self._cond:
                self._active.discard(threading.current_thread())
                self._cond.notify_all()

    def stop(self, grace: float = 10.0) -> bool:
        """Stop accepting (the socket path goes away, so new shims fall back at once) and wait
        up to ``grace`` seconds for requests in flight. True when all of them finished."""
        sock, self._sock = self._sock, None
        if sock is not None:
            with contextlib.suppress(FileNotFoundError):
                if os.stat(self.path).st_ino == self._inode:  # not a newer daemon's socket
                    os.unlink(self.path)
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        with self._cond:
            return self._cond.wait_for(lambda: not self._active, timeout=grace)
