"""A small, bounded HTTP/1.1 server: one request per connection, built to survive its clients.

Used twice by the daemon: the CNI unix socket (:mod:`metacni.daemon.server`) and the TCP
probe/metrics port (:mod:`metacni.daemon.health`). Its contracts:

- **One I/O thread** accepts and reads every connection (non-blocking, ``selectors``), parsing
  with ``h11``. A client that connects and never sends costs a file descriptor and a buffer,
  not a thread; it is closed when ``read_timeout`` passes (head and body included).
- **Bounded**: at most ``max_connections`` are open; beyond that the listening socket is not
  polled, so further clients wait in the kernel's listen backlog. Complete requests wait in a
  queue of ``queue_size`` for one of at most ``workers`` threads (started on demand); a full
  queue is answered 503 at once.
- **Early refusals**: a peer ``accept_peer`` refuses is closed unanswered; a body larger than
  ``max_body`` is answered 413 from its ``Content-Length`` alone, before any of it is read.
- **Survives**: every error of the accept loop (``EMFILE``, a thread that cannot start, a bug)
  is logged and counted, and the loop backs off and goes on. Should it end anyway, the
  listening socket is closed (clients are refused at once rather than left in the backlog) and
  :meth:`HTTPServer.healthy` turns false, for ``/healthz``.
- Answers are written with a ``write_timeout``; every answer closes the connection.

Above 400 lines on purpose: the I/O loop, its bounds and the worker hand-off share one
connection state; split apart, each half would reach into the other's internals.
"""

from __future__ import annotations

import contextlib
import errno
import http
import logging
import select
import selectors
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import h11

from .protocol import MAX_BODY
from .workpool import WorkerPool

log = logging.getLogger(__name__)
MAX_HEAD = 64 * 1024
# Answers written by the I/O thread itself (probes, refusals) are a few hundred bytes, which a
# fresh socket's buffer always takes; this only bounds a pathological case.
IO_THREAD_WRITE = 0.5


@dataclass(frozen=True)
class Limits:
    read_timeout: float = 10.0  # from accept until the whole request (head and body) is in
    write_timeout: float = 10.0  # for writing the answer
    max_connections: int = 512  # open connections, idle ones included
    workers: int = 32  # threads running requests
    queue_size: int = 256  # complete requests waiting for a worker
    backlog: int = 256
    max_body: int = MAX_BODY


@dataclass(frozen=True)
class Reply:
    status: int
    body: bytes
    content_type: str = "application/json"
    headers: tuple[tuple[str, str], ...] = ()


@dataclass
class Request:
    """A complete request. ``client_gone`` polls the connection: True once the client closed it."""

    method: str
    path: str
    headers: dict[str, str]  # lower-case names
    body: bytes
    peer: tuple[int, int, int] | None  # (pid, uid, gid) on a unix socket
    sock: socket.socket = field(repr=False)
    query: str = ""  # the target after "?", undecoded
    state: Any = None  # for the routes (set by ``Routes.received``)
    seen: bool = False  # ``Routes.received`` ran: ``Routes.answered`` follows the answer

    def client_gone(self) -> bool:
        """True when the client has closed its end (POLLHUP/POLLERR). A client that only
        half-closed (``shutdown(SHUT_WR)`` after sending) still waits for the answer."""
        try:
            p = select.poll()
            p.register(self.sock, select.POLLHUP | select.POLLERR)
            return any(ev & (select.POLLHUP | select.POLLERR | select.POLLNVAL) for _, ev in p.poll(0))
        except (OSError, ValueError):
            return True


class Routes(Protocol):
    """What a server serves. ``head`` sees the request line and headers as soon as they are in
    (return a Reply to answer at once without reading the body); ``inline`` says whether
    ``handle`` is cheap enough to run on the I/O thread; ``received`` runs on the I/O thread
    once the request is complete and before it is queued (ordering bookkeeping); ``answered``
    runs once the answer of every request ``received`` saw is written, or could not be."""

    def head(self, method: str, path: str, headers: dict[str, str]) -> Reply | None: ...

    def inline(self, method: str, path: str) -> bool: ...

    def received(self, request: Request) -> None: ...

    def answered(self, request: Request) -> None: ...

    def handle(self, request: Request) -> Reply: ...

    def unavailable(self, why: str) -> Reply: ...

    def too_large(self, limit: int) -> Reply: ...


Events = Callable[[str], None]  # counts named events: "refused_peer", "read_timeout", ...


def encode_reply(reply: Reply, extra: tuple[tuple[str, str], ...] = ()) -> bytes:
    try:
        phrase = http.HTTPStatus(reply.status).phrase
    except ValueError:
        phrase = "Unknown"
    lines = [f"HTTP/1.1 {reply.status} {phrase}", f"Content-Type: {reply.content_type}",
             f"Content-Length: {len(reply.body)}", "Connection: close"]
    lines += [f"{k}: {v}" for k, v in (*extra, *reply.headers)]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + reply.body


class _Conn:
    __slots__ = ("sock", "peer", "deadline", "parser", "request", "body")

    def __init__(self, sock: socket.socket, peer: tuple[int, int, int] | None, deadline: float) -> None:
        self.sock = sock
        self.peer = peer
        self.deadline = deadline
        self.parser = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEAD)
        self.request: h11.Request | None = None
        self.body = bytearray()


class HTTPServer:
    """Serve ``routes`` on a listening socket (already bound and listening)."""

    def __init__(self, sock: socket.socket, routes: Routes, limits: Limits, *, name: str = "http",
                 accept_peer: Callable[[socket.socket], tuple[bool, tuple[int, int, int] | None]] | None = None,
                 events: Events | None = None, extra_headers: tuple[tuple[str, str], ...] = (),
                 thread_factory: Callable[..., threading.Thread] = threading.Thread) -> None:
        self.sock = sock
        self.routes = routes
        self.limits = limits
        self.name = name
        self.accept_peer = accept_peer
        self.events: Events = events or (lambda _name: None)
        self.extra_headers = extra_headers
        self._pool = WorkerPool(limits.workers, limits.queue_size, self._serve_job, thread_factory, self.events, name)
        self._sel = selectors.DefaultSelector()
        self._conns: dict[int, _Conn] = {}
        self._open = 0  # connections accepted and not closed yet (in the selector or in a worker)
        self._open_lock = threading.Lock()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._stop = threading.Event()
        self._listening = False
        self._accept_backoff = 0.0
        self._accept_paused_until = 0.0
        self._busy = threading.Condition()
        self._in_worker = 0
        self.loop_error: BaseException | None = None
        self._thread = threading.Thread(target=self._loop, name=f"{name}-io", daemon=True)

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        self.sock.setblocking(False)
        self._sel.register(self._wake_r, selectors.EVENT_READ, "wake")
        self._thread.start()

    def healthy(self) -> bool:
        """True while the I/O loop runs (it accepts and reads every connection)."""
        return self._thread.is_alive() and not self._stop.is_set() and self.loop_error is None

    @property
    def listening(self) -> bool:
        """False while ``max_connections`` are open (new clients wait in the backlog)."""
        return self._listening

    def queued(self) -> int:
        """Complete requests waiting for a worker."""
        return self._pool.queued()

    def stop(self, grace: float) -> bool:
        """Stop accepting, answer queued requests "unavailable", wait up to ``grace`` seconds for
        requests in flight. True when none is left."""
        self._stop.set()
        self._wakeup()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(max(grace, 1.0))
        for job in self._pool.drain():
            self._finish(job, self.routes.unavailable("the daemon is shutting down"))
        with self._busy:
            ok = self._busy.wait_for(lambda: self._in_worker == 0, timeout=grace)
        self._wake_r.close()
        self._wake_w.close()
        return ok

    def _wakeup(self) -> None:
        with contextlib.suppress(OSError):
            self._wake_w.send(b"x")

    def _closed(self) -> None:
        with self._open_lock:
            self._open -= 1
        self._wakeup()

    # ------------------------------------------------------------------ the I/O loop
    def _loop(self) -> None:
        backoff = 0.0
        try:
            while not self._stop.is_set():
                try:
                    self._tick()
                    backoff = 0.0
                except Exception as exc:  # the loop must survive anything; a repeating error backs off
                    backoff = min(1.0, backoff * 2 or 0.05)
                    self.events("loop_error")
                    log.exception("%s: I/O loop error (continuing in %.2fs): %s", self.name, backoff, exc)
                    self._stop.wait(backoff)
        except BaseException as exc:  # noqa: B036 - recorded for healthy(), the thread ends here
            self.loop_error = exc
            log.critical("%s: I/O loop died: %r", self.name, exc, exc_info=True)
            # Nobody will accept again: refuse connections at once instead of letting clients
            # wait in the backlog for their timeout (a shim then treats the daemon as down).
            with contextlib.suppress(Exception):
                self.sock.close()
        finally:
            for conn in list(self._conns.values()):
                self._drop(conn)
            with contextlib.suppress(Exception):
                self._sel.close()

    def _tick(self) -> None:
        now = time.monotonic()
        self._update_listening(now)
        self._pool.grow()
        timeout = 1.0
        if self._conns:
            timeout = min(timeout, max(0.0, min(c.deadline for c in self._conns.values()) - now))
        if self._accept_paused_until > now:
            timeout = min(timeout, self._accept_paused_until - now)
        if self._pool.retry_pending():
            timeout = min(timeout, max(0.01, self._pool.retry_at - now))
        for key, _ in self._sel.select(timeout):
            if key.data == "wake":
                with contextlib.suppress(OSError):
                    while self._wake_r.recv(4096):
                        pass
            elif key.data == "listen":
                self._accept()
            else:
                self._readable(key.data)
        now = time.monotonic()
        for conn in [c for c in self._conns.values() if c.deadline <= now]:
            self.events("read_timeout")
            log.info("%s: closing a connection that sent no complete request in %gs", self.name,
                     self.limits.read_timeout, extra={"peer": conn.peer})
            self._reply_and_drop(conn, Reply(408, b"request not received in time\n", "text/plain"))

    def _update_listening(self, now: float) -> None:
        with self._open_lock:
            room = self._open < self.limits.max_connections
        want = room and now >= self._accept_paused_until
        if want and not self._listening:
            self._sel.register(self.sock, selectors.EVENT_READ, "listen")
            self._listening = True
        elif not want and self._listening:
            self._sel.unregister(self.sock)
            self._listening = False

    def _accept(self) -> None:
        for _ in range(64):  # a burst, then back to the other connections
            with self._open_lock:
                if self._open >= self.limits.max_connections:
                    return
            try:
                conn, _ = self.sock.accept()
            except BlockingIOError:
                self._accept_backoff = 0.0
                return
            except OSError as exc:
                # EMFILE/ENFILE/ENOBUFS/ENOMEM: the pending connection stays in the backlog;
                # stop polling the listener for a while instead of spinning on it.
                self._accept_backoff = min(1.0, self._accept_backoff * 2 or 0.05)
                self._accept_paused_until = time.monotonic() + self._accept_backoff
                self.events("accept_error")
                log.warning("%s: accept failed (%s), pausing %.2fs", self.name,
                            errno.errorcode.get(exc.errno or 0, exc), self._accept_backoff)
                return
            self._admit(conn)

    def _admit(self, conn: socket.socket) -> None:
        peer = None
        try:
            if self.accept_peer is not None:
                ok, peer = self.accept_peer(conn)
                if not ok:
                    self.events("refused_peer")
                    log.warning("%s: refused a connection from %s", self.name,
                                f"pid {peer[0]} uid {peer[1]}" if peer else "an unknown peer")
                    conn.close()
                    return
            conn.setblocking(False)
            c = _Conn(conn, peer, time.monotonic() + self.limits.read_timeout)
            self._sel.register(conn, selectors.EVENT_READ, c)
        except Exception:
            conn.close()
            raise
        self._conns[conn.fileno()] = c
        with self._open_lock:
            self._open += 1

    def _readable(self, c: _Conn) -> None:
        try:
            data = c.sock.recv(65536)
        except BlockingIOError:
            return
        except OSError:
            self._drop(c)
            return
        try:
            c.parser.receive_data(data)
            while True:
                event = c.parser.next_event()
                if event is h11.NEED_DATA:
                    if not data:  # EOF before a complete request
                        self._drop(c)
                    return
                if isinstance(event, h11.Request):
                    c.request = event
                    early = self._head(event)
                    if early is not None:
                        self._reply_and_drop(c, early)
                        return
                    if c.parser.they_are_waiting_for_100_continue:  # curl asks, for large bodies
                        with contextlib.suppress(OSError):
                            c.sock.send(b"HTTP/1.1 100 Continue\r\n\r\n")
                elif isinstance(event, h11.Data):
                    c.body += event.data
                    if len(c.body) > self.limits.max_body:
                        self._reply_and_drop(c, self._too_large())
                        return
                elif isinstance(event, h11.EndOfMessage):
                    self._complete(c)
                    return
                elif isinstance(event, h11.ConnectionClosed):
                    self._drop(c)
                    return
                else:  # PAUSED: a second request pipelined; we answer only the first
                    self._complete(c)
                    return
        except h11.RemoteProtocolError as exc:
            self.events("bad_request")
            self._reply_and_drop(c, Reply(exc.error_status_hint, f"bad request: {exc}\n".encode(), "text/plain"))

    def _head(self, event: h11.Request) -> Reply | None:
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in event.headers}
        length = headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > self.limits.max_body:
            return self._too_large()
        method, path = event.method.decode("latin-1"), event.target.decode("latin-1").split("?", 1)[0]
        return self.routes.head(method, path, headers)

    def _too_large(self) -> Reply:
        self.events("too_large")
        return self.routes.too_large(self.limits.max_body)

    def _complete(self, c: _Conn) -> None:
        self._sel.unregister(c.sock)
        del self._conns[c.sock.fileno()]
        assert c.request is not None
        path, _, query = c.request.target.decode("latin-1").partition("?")
        req = Request(c.request.method.decode("latin-1"), path,
                      {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in c.request.headers},
                      bytes(c.body), c.peer, c.sock, query=query)
        if self.routes.inline(req.method, req.path):
            self._finish(req, timeout=IO_THREAD_WRITE)
            return
        try:
            req.seen = True
            self.routes.received(req)
            submitted = self._pool.submit(req)
        except Exception:  # a bug in the routes: answer this client, keep the loop going
            self.events("loop_error")
            log.exception("%s: could not queue a request", self.name)
            self._finish(req, Reply(500, b"internal error\n", "text/plain"), IO_THREAD_WRITE)
            return
        if not submitted:
            self.events("queue_full")
            log.warning("%s: request queue full, answering 503", self.name)
            self._finish(req, self.routes.unavailable("the daemon is busy (request queue full)"), IO_THREAD_WRITE)

    def _finish(self, req: Request, reply: Reply | None = None, timeout: float | None = None) -> None:
        if reply is None:
            try:
                reply = self.routes.handle(req)
            except Exception as exc:
                log.exception("%s: handler failed", self.name)
                reply = Reply(500, f"internal error: {type(exc).__name__}\n".encode(), "text/plain")
        self._answer(req.sock, reply, timeout=timeout)
        if req.seen:
            try:
                self.routes.answered(req)
            except Exception:  # bookkeeping only: the answer is out
                log.exception("%s: answered() failed", self.name)
        self._closed()

    def _reply_and_drop(self, c: _Conn, reply: Reply) -> None:
        self._answer(c.sock, reply, keep=True, timeout=IO_THREAD_WRITE)
        self._drop(c)

    def _drop(self, c: _Conn) -> None:
        with contextlib.suppress(KeyError, ValueError, OSError):
            self._sel.unregister(c.sock)
        self._conns.pop(c.sock.fileno(), None)
        c.sock.close()
        with self._open_lock:
            self._open -= 1

    def _answer(self, sock: socket.socket, reply: Reply, keep: bool = False, timeout: float | None = None) -> None:
        """Write the whole answer within ``write_timeout`` (or ``timeout``), then close (unless
        ``keep``)."""
        data = encode_reply(reply, self.extra_headers)
        try:
            sock.settimeout(min(self.limits.write_timeout, timeout or self.limits.write_timeout))
            sock.sendall(data)
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_WR)
        except OSError as exc:  # the client went away or does not read: nothing to tell it
            self.events("write_failed")
            log.info("%s: could not send the answer: %s", self.name, exc)
        finally:
            if not keep:
                sock.close()

    # ------------------------------------------------------------------ workers
    def _serve_job(self, req: Request) -> None:
        with self._busy:
            self._in_worker += 1
        try:
            self._finish(req)
        finally:
            with self._busy:
                self._in_worker -= 1
                self._busy.notify_all()
