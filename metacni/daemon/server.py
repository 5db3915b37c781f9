"""The daemon's unix socket: protocol v1 (:mod:`metacni.daemon.protocol`) over the bounded
HTTP server of :mod:`metacni.daemon.httpserve`.

The socket lives in a 0700 directory and is itself 0600, and only peers whose uid (SO_PEERCRED,
as of their ``connect``) is allowed (root) are served: whoever can talk to it can configure any
pod's network. It is bound under a temporary name and renamed into place, so a shim never
reaches a socket whose permissions are not yet set.

Ordering of abandoned calls: a CNI call's handler asks :meth:`Ordering.start` right before it
runs the plugins (holding the container's lock). An ADD or CHECK is not started when a DEL of
the same container arrived after it, or when its client has closed the connection (the shim
timed out, the runtime was killed): so an abandoned ADD never runs after its container's DEL.
A DEL always runs, even when its client went away: tearing down twice is harmless, leaking is not.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import struct
import threading
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import metacni
from metacni.spec.errors import CNIError, Code
from metacni.spec.versions import ALL_VERSIONS

from .httpserve import Events, HTTPServer, Limits, Reply, Request
from .protocol import PROTOCOL, PROTOCOL_HEADER, CNIRequest, decode_request, error_body

log = logging.getLogger(__name__)
Abandoned = Callable[[], str | None]
CNIHandler = Callable[[CNIRequest, Abandoned], Reply]
# GET /readyz: the query's parameters -> the daemon's state ({"ready": bool, ...}). It runs on a
# worker, so it may wait (e.g. for background work to settle) within the client's timeout.
StatusHandler = Callable[[dict[str, str]], dict[str, object]]
DelegateHandler = Callable[[bytes], Reply]  # POST /delegate's body -> the answer
_UCRED = struct.Struct("3i")
_CANCELLABLE = ("ADD", "CHECK")
_SUN_PATH_MAX = 107  # sockaddr_un.sun_path, less its terminating NUL


@dataclass(eq=False)
class Call:
    cni: CNIRequest
    http: Request
    superseded: bool = False


class InFlight:
    """CNI calls between their arrival and their written answer, for background work that
    waits for a quiet moment (:class:`metacni.daemon.status_writer.StatusWriter`)."""

    def __init__(self) -> None:
        self._count = 0
        self._cond = threading.Condition()

    def enter(self) -> None:
        with self._cond:
            self._count += 1

    def leave(self) -> None:
        with self._cond:
            self._count -= 1
            if self._count <= 0:
                self._cond.notify_all()

    def wait_quiet(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for no call in flight; True when there is none."""
        with self._cond:
            return self._cond.wait_for(lambda: self._count <= 0, timeout)


class Ordering:
    """Queued-not-started ADD/CHECK calls per container; a DEL's arrival supersedes them."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._waiting: dict[str, set[Call]] = {}

    def arrived(self, call: Call) -> None:
        cid = call.cni.container_id
        if not cid:
            return
        with self._lock:
            if call.cni.command == "DEL":
                for other in self._waiting.get(cid, ()):
                    other.superseded = True
            elif call.cni.command in _CANCELLABLE:
                self._waiting.setdefault(cid, set()).add(call)

    def start(self, call: Call) -> str | None:
        """None: go ahead. Otherwise why the call must not run."""
        with self._lock:
            self._forget(call)
            if call.superseded:
                return "a DEL of the same container arrived after it"
        if call.cni.command in _CANCELLABLE and call.http.client_gone():
            return "its client closed the connection"
        return None

    def finished(self, call: Call) -> None:
        with self._lock:
            self._forget(call)

    def _forget(self, call: Call) -> None:
        cid = call.cni.container_id
        waiting = self._waiting.get(cid)
        if waiting is not None:
            waiting.discard(call)
            if not waiting:
                del self._waiting[cid]

    def __len__(self) -> int:
        with self._lock:
            return sum(len(v) for v in self._waiting.values())


def peer_credentials(conn: socket.socket) -> tuple[int, int, int]:
    """(pid, uid, gid) of a unix socket's peer, as of its ``connect``."""
    pid, uid, gid = _UCRED.unpack(conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _UCRED.size))
    return pid, uid, gid


def _json(status: int, doc: object) -> Reply:
    return Reply(status, json.dumps(doc).encode() + b"\n")


class CNIRoutes:
    """POST /cni, GET /version, /healthz, /readyz (see :mod:`metacni.daemon.protocol`)."""

    def __init__(self, handler: CNIHandler, ready: StatusHandler, delegate: DelegateHandler | None = None) -> None:
        self.handler = handler
        self.ready = ready
        self.delegate = delegate  # Multus' POST /delegate (metacni.daemon.hotplug)
        self.ordering = Ordering()
        self.in_flight = InFlight()

    def head(self, method: str, path: str, headers: dict[str, str]) -> Reply | None:
        if path == "/cni":
            if method != "POST":
                return Reply(405, error_body(Code.INVALID_ENVIRONMENT, "POST a CNI call to /cni"))
            spoken = headers.get(PROTOCOL_HEADER.lower())
            if spoken != str(PROTOCOL):
                return Reply(400, error_body(Code.TRY_AGAIN_LATER,
                                             f"shim speaks protocol {spoken or 'none'}, daemon speaks {PROTOCOL}: "
                                             "reinstall the shim",
                                             f"the request's {PROTOCOL_HEADER} header is {spoken!r}" if spoken
                                             else f"the request has no {PROTOCOL_HEADER} header"))
            return None
        if path == "/delegate" and self.delegate is not None:
            return None if method == "POST" else Reply(405, b"POST only\n", "text/plain")
        if path in ("/version", "/healthz", "/readyz"):
            return None if method == "GET" else Reply(405, b"GET only\n", "text/plain")
        return Reply(404, b"not found: the daemon serves POST /cni, GET /version, /healthz, /readyz\n", "text/plain")

    def inline(self, method: str, path: str) -> bool:
        return path in ("/healthz", "/version")

    def received(self, request: Request) -> None:
        if request.path != "/cni":
            return
        try:
            request.state = Call(decode_request(request.body), request)
        except CNIError as exc:
            request.state = exc
            return
        self.in_flight.enter()
        self.ordering.arrived(request.state)

    def answered(self, request: Request) -> None:
        if isinstance(request.state, Call):
            self.in_flight.leave()

    def handle(self, request: Request) -> Reply:
        if request.path == "/healthz":
            return Reply(200, b"ok\n", "text/plain")
        if request.path == "/version":
            return _json(200, {"protocol": PROTOCOL, "version": metacni.__version__,
                               "cniVersions": list(ALL_VERSIONS)})
        if request.path == "/delegate" and self.delegate is not None:
            return self.delegate(request.body)
        if request.path == "/readyz":
            state = self.ready(dict(urllib.parse.parse_qsl(request.query)))
            return _json(200 if state.get("ready") else 503, state)
        call = request.state
        if isinstance(call, CNIError):
            return Reply(400, call.to_json().encode() + b"\n")
        assert isinstance(call, Call)
        try:
            return self.handler(call.cni, lambda: self.ordering.start(call))
        finally:
            self.ordering.finished(call)

    def unavailable(self, why: str) -> Reply:
        return Reply(503, error_body(Code.TRY_AGAIN_LATER, f"metacni daemon unavailable: {why}", "retry later"))

    def too_large(self, limit: int) -> Reply:
        return Reply(413, error_body(Code.INVALID_CONFIG, "config too large",
                                     f"the daemon accepts request bodies up to {limit} bytes"))


class UnixServer:
    """The CNI socket at ``path``: bound 0600 in a 0700 directory, served to ``allowed_uids``."""

    def __init__(self, path: str | os.PathLike[str], handler: CNIHandler, ready: StatusHandler,
                 limits: Limits | None = None, *, allowed_uids: frozenset[int] = frozenset({0}),
                 events: Events | None = None,
                 thread_factory: Callable[..., threading.Thread] = threading.Thread,
                 delegate: DelegateHandler | None = None) -> None:
        self.path = Path(path)
        self.routes = CNIRoutes(handler, ready, delegate)
        self.limits = limits or Limits()
        self.allowed_uids = allowed_uids
        self.events = events
        self.thread_factory = thread_factory
        self.http: HTTPServer | None = None
        self._sock: socket.socket | None = None
        self._inode = 0

    def _accept_peer(self, conn: socket.socket) -> tuple[bool, tuple[int, int, int] | None]:
        try:
            peer = peer_credentials(conn)
        except OSError:
            return False, None
        return peer[1] in self.allowed_uids, peer

    def start(self) -> None:
        if len(os.fsencode(self.path)) > _SUN_PATH_MAX:
            raise ValueError(f"daemon socket path {str(self.path)!r} is longer than {_SUN_PATH_MAX} bytes")
        directory = self.path.parent
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        directory.chmod(0o700)
        tmp = directory / f".{os.getpid()}.tmp"
        tmp.unlink(missing_ok=True)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.bind(os.fspath(tmp))  # AF_UNIX addresses are str or bytes, not PathLike
            tmp.chmod(0o600)
            sock.listen(self.limits.backlog)
            tmp.replace(self.path)
        except BaseException:
            sock.close()
            raise
        self._inode = self.path.stat().st_ino
        self._sock = sock
        self.http = HTTPServer(sock, self.routes, self.limits, name="cni", accept_peer=self._accept_peer,
                               events=self.events, extra_headers=((PROTOCOL_HEADER, str(PROTOCOL)),),
                               thread_factory=self.thread_factory)
        self.http.start()
        log.info("serving CNI requests", extra={"socket": self.path})

    def healthy(self) -> bool:
        return self.http is not None and self.http.healthy()

    def stop(self, grace: float = 10.0) -> bool:
        """Stop accepting (the socket path goes away, so new shims see the daemon down at once),
        answer queued calls 503 and wait up to ``grace`` seconds for calls in flight. True when
        all of them finished."""
        sock, self._sock = self._sock, None
        if sock is None:
            return True
        with contextlib.suppress(FileNotFoundError):
            if self.path.stat().st_ino == self._inode:  # not a newer daemon's socket
                self.path.unlink()
        ok = self.http.stop(grace) if self.http is not None else True
        sock.close()
        return ok
