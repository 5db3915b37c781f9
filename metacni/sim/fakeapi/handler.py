"""HTTP side of the fake apiserver: routing Kubernetes REST paths, JSON responses, chunked watches.

HTTP/1.1 with keep-alive, because urllib3 (under the real client) pools connections, and chunked
transfer encoding for watches, because that is what ``Watch().stream`` reads line by line.

Above 400 lines on purpose: one routing table for every REST verb the fake serves (get, list,
watch, create, patch, delete, subresources); the semantics live in :mod:`.store`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import queue
import select
import socket
import sys
import threading
import time
import traceback
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

from . import errors, resources
from .errors import ApiError
from .resources import JSON, ResourceType
from .selectors import selector_predicate
from .store import Watcher

if TYPE_CHECKING:
    from .server import FakeAPIServer

log = logging.getLogger(__name__)

DISCOVERY = "discovery"
_POLL_SECONDS = 0.2
_TRUE = ("true", "1", "yes")
#: a gated request still held after this long is dropped (a test that forgot to open its gate)
GATE_TIMEOUT = 30.0


@dataclass
class Request:
    """A parsed request: the (verb, resource) pair counters and faults key on, plus its target."""

    method: str
    path: str
    query: dict[str, str]
    body: bytes
    content_type: str
    verb: str = "get"
    resource: str = DISCOVERY
    rt: ResourceType | None = None
    namespace: str | None = None
    name: str | None = None
    sub: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def json_body(self) -> Any:
        if not self.body:
            return None
        try:
            return json.loads(self.body)
        except ValueError as exc:
            raise errors.bad_request(f"invalid JSON body: {exc}") from None

    def object_body(self) -> JSON:
        body = self.json_body()
        if not isinstance(body, dict):
            raise errors.bad_request("the request body must be a JSON object")
        return body

    def flag(self, name: str) -> bool:
        return self.query.get(name, "").lower() in _TRUE


def _split_resource_path(path: str) -> tuple[str, str, list[str]] | None:
    """``(group, version, segments after the version)`` for /api/v1/... and /apis/g/v/..."""
    parts = [p for p in path.split("/") if p]
    if len(parts) >= 2 and parts[0] == "api":
        return "", parts[1], parts[2:]
    if len(parts) >= 3 and parts[0] == "apis":
        return parts[1], parts[2], parts[3:]
    return None


def _target(group: str, version: str, segs: list[str]) -> tuple[ResourceType, str | None, list[str]]:
    """The resource type, namespace and ``[name, subresource]`` tail a path addresses."""
    if len(segs) >= 3 and segs[0] == "namespaces" and (group, version, segs[2]) in resources.BY_PATH:
        rt, namespace, tail = resources.BY_PATH[(group, version, segs[2])], segs[1], segs[3:]
        if not rt.namespaced:
            raise errors.path_not_found()
    elif segs and (group, version, segs[0]) in resources.BY_PATH:
        rt, namespace, tail = resources.BY_PATH[(group, version, segs[0])], None, segs[1:]
        if rt.namespaced and tail:
            raise errors.path_not_found()
    else:
        raise errors.path_not_found()
    if len(tail) > 2 or (len(tail) == 2 and tail[1] not in rt.subresources):
        raise errors.path_not_found()
    return rt, namespace, tail


_COLLECTION_VERBS = {"GET": "list", "POST": "create", "DELETE": "deletecollection"}
_ITEM_VERBS = {"GET": "get", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}


def route(req: Request) -> None:
    """Fill in verb, resource and target from method and path (404/405 for what is not served)."""
    split = _split_resource_path(req.path)
    if split is None or not split[2]:
        if req.method != "GET":
            raise errors.method_not_allowed(req.method)
        return  # discovery documents, /version, health checks
    group, version, segs = split
    rt, namespace, tail = _target(group, version, segs)
    req.rt, req.namespace = rt, namespace
    req.name = tail[0] if tail else None
    req.sub = tail[1] if len(tail) > 1 else None
    verbs = _ITEM_VERBS if req.name else _COLLECTION_VERBS
    if req.sub == "binding":
        verbs = {"POST": "create"}
    if req.method not in verbs:
        raise errors.method_not_allowed(req.method)
    req.verb = verbs[req.method]
    if req.verb == "list" and req.flag("watch"):
        req.verb = "watch"
    if req.verb == "create" and rt.namespaced and namespace is None:
        raise errors.method_not_allowed(req.method)
    req.resource = f"{rt.plural}/{req.sub}" if req.sub else rt.plural


def discovery_document(path: str, server_address: str) -> JSON:
    parts = [p for p in path.split("/") if p]
    doc: JSON | None = None
    if parts == ["version"]:
        doc = dict(resources.VERSION_INFO)
    elif parts == ["api"]:
        doc = resources.api_versions(server_address)
    elif parts == ["apis"]:
        doc = resources.api_group_list()
    elif len(parts) == 2 and parts[0] == "api":
        doc = resources.resource_list("", parts[1])
    elif len(parts) == 2 and parts[0] == "apis":
        doc = resources.api_group(parts[1])
    elif len(parts) == 3 and parts[0] == "apis":
        doc = resources.resource_list(parts[1], parts[2])
    if doc is None:
        raise errors.path_not_found()
    return doc


def list_document(rt: ResourceType, items: list[JSON], rv: int) -> JSON:
    if not rt.typed_list_items:
        items = [{k: v for k, v in item.items() if k not in ("kind", "apiVersion")} for item in items]
    return {"kind": rt.list_kind, "apiVersion": rt.api_version,
            "metadata": {"resourceVersion": str(rv)}, "items": items}


def _dumps(doc: Any) -> bytes:
    return json.dumps(doc, separators=(",", ":")).encode()


class HTTPServer(ThreadingHTTPServer):
    """Threaded server that remembers its open connections so ``stop`` can cut them, which is
    what makes a stopped fake unreachable even for clients holding pooled keep-alive sockets."""

    daemon_threads = True
    request_queue_size = 128

    def server_bind(self) -> None:
        """SO_REUSEADDR, so a stopped fake can listen again on its port while its connections
        linger in TIME_WAIT; but set only after a first bind to port 0: set before, it lets the
        kernel hand out a port that another test's stopped server is binding again, and the two
        then share it (a plain client once got TLS records from another worker's HTTPS fake)."""
        reuse = self.server_address[1] != 0
        if reuse:
            self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.socket.bind(self.server_address)
        self.server_address = self.socket.getsockname()
        if not reuse:
            self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        host, port = self.server_address[:2]
        self.server_name, self.server_port = socket.getfqdn(str(host)), int(port)  # as http.server's server_bind

    def __init__(self, address: tuple[str, int], api: FakeAPIServer) -> None:
        self.api = api
        self._connections: set[socket.socket] = set()
        self._conn_lock = threading.Lock()
        self.accepted = 0  # connections ever accepted: pooled clients keep this low
        super().__init__(address, Handler)

    def get_request(self) -> tuple[Any, Any]:
        """With the API's ``ssl_context``, the accepted socket speaks TLS; the handshake runs on
        the request's first read, in its own thread, so a slow client never stalls accept."""
        conn, addr = super().get_request()
        ctx = self.api.ssl_context
        if ctx is not None:
            conn = ctx.wrap_socket(conn, server_side=True, do_handshake_on_connect=False)
        return conn, addr

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._conn_lock:
            self._connections.add(request)
            self.accepted += 1
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._conn_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client hanging up mid-request is normal here (watch streams, stopped tests); only
        unexpected errors deserve socketserver's traceback on stderr."""
        if isinstance(sys.exc_info()[1], ConnectionError | TimeoutError):
            return
        super().handle_error(request, client_address)

    def cut_connections(self) -> None:
        with self._conn_lock:
            conns = list(self._connections)
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server: HTTPServer

    def do_GET(self) -> None:  # noqa: N802 - http.server naming
        self._handle("GET")

    def do_POST(self) -> None:  # noqa: N802
        self._handle("POST")

    def do_PUT(self) -> None:  # noqa: N802
        self._handle("PUT")

    def do_PATCH(self) -> None:  # noqa: N802
        self._handle("PATCH")

    def do_DELETE(self) -> None:  # noqa: N802
        self._handle("DELETE")

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - signature from the base
        log.debug("%s - %s", self.address_string(), format % args)

    # -- request plumbing ------------------------------------------------------------------

    def _read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _handle(self, method: str) -> None:
        api = self.server.api
        url = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
        req = Request(method, url.path, query, self._read_body(), self.headers.get("Content-Type", ""))
        try:
            route(req)
        except ApiError as exc:
            api._record("unknown", req.path)
            self._send_json(exc.code, exc.status())
            return
        api._record(req.verb, req.resource)
        if not self._apply_faults(req):
            return
        try:
            self._check_auth()
            self._dispatch(req)
        except ApiError as exc:
            self._send_json(exc.code, exc.status())
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        except Exception as exc:  # noqa: BLE001 - a fake must answer, not hang the client
            log.exception("fake apiserver failed on %s %s", method, self.path)
            message = f"{exc!r}\n{traceback.format_exc()}"
            self._send_json(500, errors.status_object(500, "InternalError", message))

    def _apply_faults(self, req: Request) -> bool:
        """Delay, drop or fail the request as injected faults say; False if it was answered."""
        api = self.server.api
        fault = api._take_fault(req.verb, req.resource)
        if fault is None:
            return True
        if fault.delay and api._stopping.wait(fault.delay):
            fault = fault.__class__(drop=True)
        if fault.gate is not None and not fault.gate.wait(GATE_TIMEOUT):
            fault = fault.__class__(drop=True)
        if fault.drop:
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
            return False
        if fault.status is None:
            return True
        headers = {"Retry-After": str(fault.retry_after)} if fault.retry_after is not None else {}
        reason = {500: "InternalError", 503: "ServiceUnavailable", 429: "TooManyRequests",
                  504: "Timeout"}.get(fault.status, "InternalError")
        self._send_json(fault.status, errors.status_object(fault.status, reason, fault.message), headers)
        return False

    def _check_auth(self) -> None:
        api = self.server.api
        scheme, _, token = (self.headers.get("Authorization") or "").partition(" ")
        # the scheme is case-insensitive (RFC 7235); the in-cluster loader sends "bearer"
        if api.require_auth and (scheme.lower() != "bearer" or token != api.token):
            raise ApiError(401, "Unauthorized", "Unauthorized")

    def _send_json(self, code: int, doc: Any, headers: dict[str, str] | None = None) -> None:
        payload = _dumps(doc)
        try:
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    # -- verbs -----------------------------------------------------------------------------

    def _dispatch(self, req: Request) -> None:
        api = self.server.api
        store = api.store
        rt = req.rt
        if rt is None:
            if req.path.rstrip("/") in ("/healthz", "/readyz", "/livez"):
                payload = b"ok"
                self.send_response(200)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
                return
            self._send_json(200, discovery_document(req.path, f"{api.host}:{api.port}"))
            return
        name = req.name or ""
        if req.verb == "get":
            self._send_json(200, store.get(rt, req.namespace, name))
        elif req.verb == "list":
            items, rv = store.select(rt, self._predicate(req))
            self._send_json(200, list_document(rt, items, rv))
        elif req.verb == "watch":
            self._serve_watch(req)
        elif req.verb == "create" and req.sub == "binding":
            target = (req.object_body().get("target") or {}).get("name")
            if not target:
                raise errors.invalid(rt, name, "target.name: Required value")
            store.bind(rt, req.namespace or "", name, target)
            self._send_json(201, errors.status_object(201, "", ""))
        elif req.verb == "create":
            self._send_json(201, store.create(rt, req.namespace, req.object_body()))
        elif req.verb == "update":
            self._send_json(200, store.update(rt, req.namespace, name, req.object_body(), req.sub))
        elif req.verb == "patch":
            self._send_json(200, store.patch(rt, req.namespace, name, req.content_type, req.json_body(),
                                             req.sub))
        elif req.verb == "delete":
            self._delete(req, rt, name)
        elif req.verb == "deletecollection":
            gone = store.delete_many(rt, self._predicate(req))
            self._send_json(200, list_document(rt, gone, store.resource_version))

    def _delete(self, req: Request, rt: ResourceType, name: str) -> None:
        """Pods and custom resources answer with the deleted object, other kinds with a Status."""
        options = req.json_body()
        preconditions = options.get("preconditions") if isinstance(options, dict) else None
        gone = self.server.api.store.delete(rt, req.namespace, name, preconditions)
        if rt.plural == "pods" or rt.group:
            self._send_json(200, gone)
            return
        details = {"name": name, "kind": rt.plural, "uid": gone["metadata"].get("uid")}
        self._send_json(200, errors.status_object(200, "", "", details))

    @staticmethod
    def _predicate(req: Request) -> Any:
        assert req.rt is not None
        return selector_predicate(req.rt, req.namespace, req.query.get("labelSelector"),
                                  req.query.get("fieldSelector"))

    # -- watch -----------------------------------------------------------------------------

    def _write_chunk(self, data: bytes) -> None:
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))

    def _write_event(self, kind: str, obj: JSON) -> None:
        self._write_chunk(_dumps({"type": kind, "object": obj}) + b"\n")

    def _start_stream(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("Cache-Control", "no-cache, private")
        self.end_headers()

    def _client_gone(self) -> bool:
        """True once the client closed its end (it stopped watching); checked while idle."""
        try:
            readable, _, _ = select.select([self.connection], [], [], 0)
            if not readable:
                return False
            # peek at the TCP stream itself (an SSLSocket refuses MSG_PEEK): EOF there is a hang-up
            with socket.socket(fileno=os.dup(self.connection.fileno())) as raw:
                return raw.recv(1, socket.MSG_PEEK) == b""
        except OSError:
            return True

    def _serve_watch(self, req: Request) -> None:
        api = self.server.api
        rt = req.rt
        assert rt is not None
        matches = self._predicate(req)
        rv_param = req.query.get("resourceVersion", "")
        try:
            since = None if rv_param in ("", "0") else int(rv_param)
        except ValueError:
            raise errors.bad_request(f"invalid resource version: {rv_param!r}") from None
        timeout = float(req.query["timeoutSeconds"]) if req.query.get("timeoutSeconds") else None
        try:
            watcher, start_rv, backlog = api.store.watch(rt, matches, since)
        except ApiError as exc:
            self._start_stream()
            self._write_event("ERROR", exc.status())
            self._write_chunk(b"")
            return
        api._watch_opened(rt.plural)
        try:
            self._start_stream()
            self._pump(req, watcher, start_rv, backlog, timeout)
            self._write_chunk(b"")
        except (BrokenPipeError, ConnectionResetError, OSError):
            self.close_connection = True
        finally:
            api.store.unwatch(watcher)
            api._watch_closed(rt.plural)

    def _bookmark(self, rt: ResourceType, rv: int, initial_end: bool = False) -> None:
        meta: JSON = {"resourceVersion": str(rv)}
        if initial_end:
            meta["annotations"] = {"k8s.io/initial-events-end": "true"}
        self._write_event("BOOKMARK", {"kind": rt.kind, "apiVersion": rt.api_version, "metadata": meta})

    def _pump(self, req: Request, watcher: Watcher, start_rv: int, backlog: int,
              timeout: float | None) -> None:
        """Stream events until timeoutSeconds, server stop or client hang-up, with bookmarks."""
        api = self.server.api
        rt = watcher.rt
        bookmarks = req.flag("allowWatchBookmarks")
        initial_end = bookmarks and req.flag("sendInitialEvents")
        deadline = time.monotonic() + timeout if timeout else None
        next_bookmark = time.monotonic() + api.bookmark_interval
        if initial_end and backlog == 0:
            self._bookmark(rt, start_rv, initial_end=True)
        while not api._stopping.is_set():
            now = time.monotonic()
            if deadline is not None and now >= deadline:
                return
            wait = min(_POLL_SECONDS, deadline - now if deadline else _POLL_SECONDS)
            if bookmarks:
                wait = min(wait, max(0.0, next_bookmark - now))
            try:
                event = watcher.events.get(timeout=max(wait, 0.001))
            except queue.Empty:
                if self._client_gone():
                    return
                if bookmarks and time.monotonic() >= next_bookmark:
                    rv = api.store.bookmark_rv(watcher)
                    if rv is not None:
                        self._bookmark(rt, rv)
                    next_bookmark = time.monotonic() + api.bookmark_interval
                continue
            if event is None:
                return
            seen = watcher.translate(event)
            if seen is not None:
                self._write_event(*seen)
            if backlog:
                backlog -= 1
                if backlog == 0 and initial_end:
                    self._bookmark(rt, start_rv, initial_end=True)
