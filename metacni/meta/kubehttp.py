"""The standalone call's KubeView: three REST requests over a plain socket, standard library only.

A standalone CNI call (the shim could not reach the daemon) is a fresh process that needs at
most one pod GET, a NAD GET per attached network, and one PATCH of the network-status
annotation. Importing the ``kubernetes`` client for that cost ~500 ms of the ~3 s standalone ADD
(``python -X importtime``; its package imports every generated model), against a target of
~100 ms for the whole ADD. Measured import costs on this 2-core machine (fresh interpreter, min
of 15 runs, busy machine): ``socket`` 3.9 ms, ``socket``+``ssl`` 11.7 ms, ``http.client``
26.1 ms (it imports ``email.parser`` and ``ssl`` even for plain HTTP), ``json`` 2.9 ms,
``yaml`` 17.2 ms. So the requests go over ``_socket`` (the C module ``socket`` wraps; ``socket``
adds ``selectors`` and builds its enums at import) with a minimal HTTP/1.1 exchange
(Content-Length or chunked bodies, keep-alive): ``ssl`` (and with it ``socket``) is imported only
for an https server, and ``yaml`` only for a kubeconfig that is not JSON.

Same behaviour as :class:`metacni.meta.kube.ApiKubeView` (the ``kubernetes``-client view the
daemon keeps using): 404 is None, every other failure is ``CNIError`` code 11 naming the
request, a 401 re-reads the credentials and retries once, credentials are re-read when their
files change, (connect, read) timeouts come from the config, and the PATCH is a strategic merge
patch of ``metadata.annotations``. ``apiRetries`` is a total budget as with urllib3's
``Retry(total=n)`` under the client: failed connects are retried for any request; a GET (never
the PATCH) is also retried after a read error and after 413/429/503 carrying Retry-After.

Kubeconfigs: current-context with server, certificate-authority(-data),
insecure-skip-tls-verify, tls-server-name, token, tokenFile, client-certificate(-data),
client-key(-data), username/password. Anything else (exec or auth-provider credentials, a
proxy-url) is delegated to the ``kubernetes``-client view rather than half-supported.
In-cluster: KUBERNETES_SERVICE_HOST/PORT with the service-account token and CA.
"""

from __future__ import annotations

import _socket
import _thread
import binascii  # base64's b64encode/b64decode wrap these; base64 itself is not imported
import io
import json
import os
import time
from logging import getLogger
from typing import TYPE_CHECKING

from metacni.spec.errors import CNIError, Code
from metacni.spec.record import record

from .kube import NETWORK_STATUS, SA_DIR, ApiKubeView, KubeSettings, fingerprint
from .kube_paths import STRATEGIC_MERGE_PATCH, nad_path, pod_path, pod_status_path

if TYPE_CHECKING:
    from typing import Any

    from .kube import JSON

log = getLogger(__name__)

#: The statuses urllib3 retries when they carry Retry-After (Retry.RETRY_AFTER_STATUS_CODES).
RETRY_AFTER_STATUSES = frozenset({413, 429, 503})
MAX_BODY = 64 * 1024 * 1024
#: idle connections kept per view: the daemon's concurrent ADDs each patch their pod's status
MAX_IDLE = 8
_REASONS = {400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found", 409: "Conflict",
            422: "Unprocessable Entity", 429: "Too Many Requests", 500: "Internal Server Error",
            503: "Service Unavailable", 504: "Gateway Timeout"}


class Unsupported(Exception):
    """The kubeconfig needs something only the ``kubernetes`` client does (exec plugins, ...)."""


class ConnectFailed(OSError):
    """No connection was made: nothing was sent, so any request may be retried."""


class ResponseLost(OSError):
    """The request was (maybe) sent but no complete response came back."""


@record(frozen=True)
class Endpoint:
    """Where the API is and how to authenticate, as read from a kubeconfig or the pod's service account."""

    scheme: str
    host: str
    port: int
    prefix: str = ""
    tls_server_name: str = ""
    ca_file: str = ""
    ca_data: bytes = b""
    insecure: bool = False
    cert_file: str = ""
    cert_data: bytes = b""
    key_file: str = ""
    key_data: bytes = b""
    authorization: str = ""
    token_file: str = ""

    @property
    def host_header(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        default = 443 if self.scheme == "https" else 80
        return host if self.port == default else f"{host}:{self.port}"

    def header(self) -> str:
        """The Authorization value; a tokenFile is read per request so rotation needs no reload."""
        if self.token_file:
            with open(self.token_file, encoding="utf-8") as f:
                return f"Bearer {f.read().strip()}"
        return self.authorization


# ---------------------------------------------------------------------- credentials
def parse_server(url: str) -> tuple[str, str, int, str]:
    """``https://host:port/prefix`` → (scheme, host, port, prefix); IPv6 hosts in brackets."""
    scheme, sep, rest = url.partition("://")
    if not sep or scheme not in ("http", "https"):
        raise ValueError(f"server {url!r} is not an http(s) URL")
    authority, slash, path = rest.partition("/")
    if authority.startswith("["):
        host, _, tail = authority[1:].partition("]")
        port_text = tail[1:] if tail.startswith(":") else ""
    else:
        host, _, port_text = authority.partition(":")
    if not host:
        raise ValueError(f"server {url!r} has no host")
    port = int(port_text) if port_text else (443 if scheme == "https" else 80)
    return scheme, host, port, ("/" + path).rstrip("/") if slash else ""


def _decode(value: Any, what: str) -> bytes:
    try:
        return binascii.a2b_base64(str(value))
    except ValueError as exc:
        raise ValueError(f"{what} is not base64: {exc}") from None


def load_kubeconfig(path: str) -> Endpoint:
    """The current context's endpoint. JSON is parsed with ``json``; YAML imports ``yaml`` lazily."""
    with open(path, "rb") as f:
        text = f.read()
    try:
        doc = json.loads(text)
    except ValueError:
        import yaml  # only for a kubeconfig that is not JSON: ~17 ms

        # libyaml's parser when present: yaml.safe_load's pure-Python one took 2-12 ms more here.
        doc = yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))  # a safe loader either way
    if not isinstance(doc, dict):
        raise ValueError("not a kubeconfig (top level is not a mapping)")
    current = doc.get("current-context")
    if not current:
        raise ValueError("no current-context")

    def named(key: str, name: str) -> dict[str, Any]:
        for item in doc.get(key + "s") or []:
            if isinstance(item, dict) and item.get("name") == name:
                return dict(item.get(key) or {})
        raise ValueError(f"{key} {name!r} not found")

    context = named("context", current)
    cluster = named("cluster", str(context.get("cluster") or ""))
    user = named("user", str(context["user"])) if context.get("user") else {}
    base = os.path.dirname(os.path.abspath(path))

    def file(value: Any) -> str:
        return os.path.join(base, str(value)) if value else ""

    for key in ("exec", "auth-provider"):
        if user.get(key):
            raise Unsupported(f"user credentials by {key}")
    if cluster.get("proxy-url"):
        raise Unsupported("proxy-url")
    scheme, host, port, prefix = parse_server(str(cluster.get("server") or ""))
    authorization = ""
    if user.get("token"):
        authorization = f"Bearer {user['token']}"
    elif user.get("username") and user.get("password"):
        pair = f"{user['username']}:{user['password']}".encode()
        authorization = "Basic " + binascii.b2a_base64(pair, newline=False).decode()
    return Endpoint(
        scheme=scheme, host=host, port=port, prefix=prefix,
        tls_server_name=str(cluster.get("tls-server-name") or ""),
        ca_file=file(cluster.get("certificate-authority")),
        ca_data=_decode(cluster["certificate-authority-data"], "certificate-authority-data")
        if cluster.get("certificate-authority-data") else b"",
        insecure=cluster.get("insecure-skip-tls-verify") is True,
        cert_file=file(user.get("client-certificate")),
        cert_data=_decode(user["client-certificate-data"], "client-certificate-data")
        if user.get("client-certificate-data") else b"",
        key_file=file(user.get("client-key")),
        key_data=_decode(user["client-key-data"], "client-key-data") if user.get("client-key-data") else b"",
        authorization=authorization,
        token_file="" if authorization else file(user.get("tokenFile")),
    )


def in_cluster(sa_dir: str = SA_DIR) -> Endpoint:
    """The pod's service account, as ``kubernetes.config.load_incluster_config`` reads it."""
    host = os.environ.get("KUBERNETES_SERVICE_HOST", "")
    port = os.environ.get("KUBERNETES_SERVICE_PORT", "")
    if not host or not port:
        raise ValueError("KUBERNETES_SERVICE_HOST/PORT are not set")
    token_file = os.path.join(sa_dir, "token")
    if not os.path.isfile(token_file):
        raise ValueError(f"{token_file} does not exist")
    return Endpoint(scheme="https", host=host, port=int(port), ca_file=os.path.join(sa_dir, "ca.crt"),
                    token_file=token_file)


def ssl_context(ep: Endpoint) -> Any:
    import ssl  # only for https: ~8 ms

    ctx = ssl.create_default_context(cafile=ep.ca_file or None,
                                     cadata=ep.ca_data.decode("ascii") if ep.ca_data else None)
    if ep.insecure:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    opened: list[int] = []

    def path(file: str, data: bytes) -> str | None:
        """A file ``ssl`` can load; inline data goes through a memfd, so no key is written to disk."""
        if file or not data:
            return file or None
        fd = os.memfd_create("metacni-kube-pem", os.MFD_CLOEXEC)
        opened.append(fd)
        os.write(fd, data)
        return f"/proc/self/fd/{fd}"

    try:
        cert = path(ep.cert_file, ep.cert_data)
        if cert:
            ctx.load_cert_chain(cert, path(ep.key_file, ep.key_data))
    finally:
        for fd in opened:
            os.close(fd)
    return ctx


# ---------------------------------------------------------------------- HTTP/1.1
@record(frozen=True)
class Response:
    status: int
    reason: str
    headers: dict[str, str]
    body: bytes


class Connection:
    """One HTTP/1.1 connection (TLS when the endpoint is https); ``keep_alive`` after a clean exchange."""

    def __init__(self, ep: Endpoint, ctx: Any, connect_timeout: float, timeout: float) -> None:
        try:
            sock: Any = _connect(_host_bytes(ep.host), ep.port, connect_timeout)
        except OSError as exc:
            raise ConnectFailed(exc.errno, f"connect to {ep.host_header}: {exc}") from exc
        try:
            if ctx is not None:  # the handshake runs under the connect timeout
                import socket  # ssl wraps only socket.socket (and imports socket itself)

                sock = socket.socket(sock.family, sock.type, sock.proto, fileno=sock.detach())
                sock = ctx.wrap_socket(sock, server_hostname=ep.tls_server_name or ep.host)
            sock.settimeout(timeout)
        except BaseException:
            sock.close()
            raise
        self.sock = sock
        self.reader = io.BufferedReader(_Received(sock))
        self.keep_alive = False

    def close(self) -> None:
        self.reader.close()
        self.sock.close()

    def dropped(self) -> bool:
        """True when the server closed (or wrote to) the idle connection, as urllib3 checks before reuse."""
        import select

        readable, _, _ = select.select([self.sock], [], [], 0)
        return bool(readable)

    def exchange(self, head: bytes, body: bytes) -> Response:
        self.keep_alive = False
        self.sock.sendall(head + body)
        status_line = self.reader.readline(65537)
        if not status_line:
            raise ResponseLost("the server closed the connection without a response")
        version, _, rest = status_line.decode("latin-1").rstrip("\r\n").partition(" ")
        code_text, _, reason = rest.partition(" ")
        if not version.startswith("HTTP/") or not code_text.isdigit():
            raise ResponseLost(f"malformed status line {status_line[:80]!r}")
        headers: dict[str, str] = {}
        while True:
            line = self.reader.readline(65537)
            if line in (b"\r\n", b"\n"):
                break
            if not line:
                raise ResponseLost("the connection closed inside the response headers")
            name, _, value = line.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        status = int(code_text)
        keep_alive = version != "HTTP/1.0" and headers.get("connection", "").lower() != "close"
        if headers.get("transfer-encoding", "").lower() == "chunked":
            data = self._chunked()
        elif "content-length" in headers:
            data = self._exactly(int(headers["content-length"]))
        elif status in (204, 304):
            data = b""
        else:  # delimited by the end of the connection
            data, keep_alive = self.reader.read(MAX_BODY), False
        self.keep_alive = keep_alive
        return Response(status, reason or _REASONS.get(status, ""), headers, data)

    def _exactly(self, n: int) -> bytes:
        if n > MAX_BODY:
            raise ResponseLost(f"response body of {n} bytes is too large")
        data = self.reader.read(n)
        if len(data) != n:
            raise ResponseLost(f"response body cut short ({len(data)} of {n} bytes)")
        return data

    def _chunked(self) -> bytes:
        parts: list[bytes] = []
        while True:
            size_line = self.reader.readline(1024)
            if not size_line:
                raise ResponseLost("the connection closed inside a chunked body")
            size = int(size_line.split(b";", 1)[0].strip() or b"0", 16)
            if size == 0:
                while self.reader.readline(65537) not in (b"\r\n", b"\n", b""):
                    pass  # trailers
                return b"".join(parts)
            parts.append(self._exactly(size))
            self.reader.readline(3)  # the CRLF after each chunk


def _connect(host: bytes | str, port: int, timeout: float) -> _socket.socket:
    """``socket.create_connection`` on ``_socket``: each address ``getaddrinfo`` gives, in order."""
    error: OSError = OSError(f"getaddrinfo returned no address for {host!r}")
    for family, kind, proto, _, address in _socket.getaddrinfo(host, port, 0, _socket.SOCK_STREAM):
        sock = _socket.socket(family, kind, proto)
        try:
            sock.settimeout(timeout)
            sock.connect(address)
            return sock
        except OSError as exc:
            sock.close()
            error = exc
    raise error


class _Received(io.RawIOBase):
    """The bytes a socket receives, as a raw stream for ``io.BufferedReader`` (``socket.makefile``
    without ``socket``); a timeout raises ``TimeoutError`` out of ``readinto`` as there."""

    def __init__(self, sock: Any) -> None:
        self._sock = sock

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        return int(self._sock.recv_into(buffer))


def _host_bytes(host: str) -> bytes | str:
    """An ASCII host as bytes: ``getaddrinfo`` would encode a str with the ``idna`` codec, whose
    import (``encodings.idna``, ``stringprep``, ``unicodedata``) cost 1.7 ms here."""
    return host.encode("ascii") if host.isascii() else host


# ---------------------------------------------------------------------- the view
class HttpKubeView:
    """A KubeView over :class:`Connection`; see the module docstring for the choices."""

    def __init__(self, settings: KubeSettings, *, sa_dir: str = SA_DIR) -> None:
        self.settings = settings
        self.sa_dir = sa_dir
        self._lock = _thread.RLock()  # guards the fields below, never held across a request
        self._endpoint: Endpoint | None = None
        self._ctx: Any = None
        self._idle: list[Connection] = []
        self._stamp: tuple[tuple[int, int, int], ...] | None = None
        self._fallback: ApiKubeView | None = None

    # ------------------------------------------------------------------ credentials
    def _credential_files(self) -> tuple[str, ...]:
        if self.settings.kubeconfig:
            return (self.settings.kubeconfig,)
        return (os.path.join(self.sa_dir, "ca.crt"),)  # the token is read per request

    def _load(self, force: bool = False) -> Endpoint | None:
        """The endpoint (re-read when its files changed or ``force``); None: use the fallback."""
        if self._fallback is not None:
            return None
        stamp = fingerprint(*self._credential_files())
        if self._endpoint is not None and not force and stamp == self._stamp:
            return self._endpoint
        where = self.settings.kubeconfig or "in-cluster service account"
        try:
            ep = load_kubeconfig(self.settings.kubeconfig) if self.settings.kubeconfig else in_cluster(self.sa_dir)
            ctx = ssl_context(ep) if ep.scheme == "https" else None
        except Unsupported as exc:
            log.debug("%s: %s; using the kubernetes client", where, exc)
            self._fallback = ApiKubeView(self.settings)
            return None
        except Exception as exc:  # OSError, ValueError, KeyError, YAML and SSL errors
            raise CNIError(Code.TRY_AGAIN_LATER, "cannot load Kubernetes credentials",
                           f"{where}: {type(exc).__name__}: {exc}") from None
        self._drop_connection()
        self._endpoint, self._ctx, self._stamp = ep, ctx, stamp
        return ep

    def close(self) -> None:
        with self._lock:
            self._drop_connection()
            if self._fallback is not None:
                self._fallback.close()

    def _drop_connection(self) -> None:
        """Close the idle connections (those in use close when they come back: :meth:`_checkin`)."""
        idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()

    def _checkout(self) -> tuple[Connection | None, Any]:
        """An idle connection (None: open one) and the TLS context to open it with. Idle
        connections are always to the current endpoint: a credentials change drops them."""
        with self._lock:
            while self._idle:
                conn = self._idle.pop()
                if not conn.dropped():
                    return conn, self._ctx
                conn.close()
            return None, self._ctx

    def _checkin(self, ep: Endpoint, conn: Connection) -> None:
        """Keep a reusable connection for the next request (the daemon's concurrent ADDs each
        take one), unless the credentials changed while it was in use."""
        with self._lock:
            if conn.keep_alive and ep is self._endpoint and len(self._idle) < MAX_IDLE:
                self._idle.append(conn)
                return
        conn.close()

    # ------------------------------------------------------------------ requests
    def _send(self, ep: Endpoint, authorization: str, method: str, path: str, body: bytes,
              content_type: str) -> Response:
        """One request on an idle connection of the view (a fresh one when none is idle or usable)."""
        s = self.settings
        head = [f"{method} {ep.prefix}{path} HTTP/1.1", f"Host: {ep.host_header}", "Accept: application/json",
                "User-Agent: metacni", f"Content-Length: {len(body)}"]
        if authorization:
            head.append(f"Authorization: {authorization}")
        if content_type:
            head.append(f"Content-Type: {content_type}")
        raw = ("\r\n".join(head) + "\r\n\r\n").encode("latin-1")
        conn, ctx = self._checkout()
        if conn is None:
            conn = Connection(ep, ctx, s.connect_timeout, s.timeout)
        try:
            resp = conn.exchange(raw, body)
        except BaseException:
            conn.close()
            raise
        self._checkin(ep, conn)
        return resp

    def _request(self, what: str, method: str, path: str, body: bytes = b"", content_type: str = "") -> Response:
        """Send with the urllib3-equivalent retry budget; 401 re-reads credentials once."""
        retries = self.settings.retries
        reloaded = False
        while True:
            with self._lock:
                ep = self._load(force=reloaded)
            if ep is None:  # a 401 re-read found credentials only the kubernetes client handles
                raise CNIError(Code.TRY_AGAIN_LATER, "Kubernetes API error", f"{what}: HTTP 401 Unauthorized")
            try:
                authorization = ep.header()
            except OSError as exc:
                raise CNIError(Code.TRY_AGAIN_LATER, "cannot load Kubernetes credentials",
                               f"{ep.token_file}: {exc.strerror or exc}") from None
            try:
                resp = self._send(ep, authorization, method, path, body, content_type)
            except ConnectFailed as exc:
                if retries > 0:
                    retries -= 1
                    continue
                raise CNIError(Code.TRY_AGAIN_LATER, "Kubernetes API unreachable",
                               f"{what}: {type(exc).__name__}: {exc}") from None
            except (OSError, ValueError) as exc:  # timeouts, resets, TLS and protocol errors
                if method == "GET" and retries > 0 and not _is_tls_verification(exc):
                    retries -= 1
                    continue
                raise CNIError(Code.TRY_AGAIN_LATER, "Kubernetes API unreachable",
                               f"{what}: {type(exc).__name__}: {exc}") from None
            if resp.status == 401 and not reloaded:
                log.info("%s: 401 Unauthorized, re-reading credentials", what)
                reloaded = True
                continue
            if (method == "GET" and retries > 0 and resp.status in RETRY_AFTER_STATUSES
                    and "retry-after" in resp.headers):
                retries -= 1
                time.sleep(_retry_after(resp.headers["retry-after"], self.settings.timeout))
                continue
            return resp

    def _json(self, what: str, method: str, path: str, body: bytes = b"", content_type: str = "") -> JSON | None:
        """The response object; None for 404; CNIError code 11 for anything else that is not 2xx."""
        resp = self._request(what, method, path, body, content_type)
        if resp.status == 404:
            return None
        if not 200 <= resp.status < 300:
            raise CNIError(Code.TRY_AGAIN_LATER, "Kubernetes API error",
                           f"{what}: HTTP {resp.status} {resp.reason}: {_status_message(resp.body)}")
        try:
            data = json.loads(resp.body)
        except ValueError as exc:
            raise CNIError(Code.TRY_AGAIN_LATER, "Kubernetes API error", f"{what}: invalid JSON: {exc}") from None
        if not isinstance(data, dict):
            raise CNIError(Code.TRY_AGAIN_LATER, "Kubernetes API error", f"{what}: not a JSON object")
        return data

    def _delegate(self) -> ApiKubeView | None:
        """The ``kubernetes``-client view when the credentials need it (exec plugins, ...)."""
        with self._lock:
            self._load()
            return self._fallback

    # ------------------------------------------------------------------ KubeView
    def get_pod(self, namespace: str, name: str) -> JSON | None:
        fallback = self._delegate()
        if fallback is not None:
            return fallback.get_pod(namespace, name)
        return self._json(f"GET pod {namespace}/{name}", "GET", pod_path(namespace, name))

    def get_nad(self, namespace: str, name: str) -> JSON | None:
        fallback = self._delegate()
        if fallback is not None:
            return fallback.get_nad(namespace, name)
        return self._json(f"GET network-attachment-definition {namespace}/{name}", "GET",
                          nad_path(namespace, name))

    def patch_pod_network_status(self, namespace: str, name: str, status: list[JSON]) -> None:
        fallback = self._delegate()
        if fallback is not None:
            fallback.patch_pod_network_status(namespace, name, status)
            return
        body = json.dumps({"metadata": {"annotations": {NETWORK_STATUS: json.dumps(status)}}}).encode()
        if self._json(f"PATCH pod {namespace}/{name}/status network-status", "PATCH",
                      pod_status_path(namespace, name), body, STRATEGIC_MERGE_PATCH) is None:
            log.warning("pod %s/%s is gone; network-status not written", namespace, name)


def _retry_after(value: str, cap: float) -> float:
    """Seconds to wait (an integer or an HTTP date, as urllib3 reads it), capped at the read timeout."""
    try:
        seconds = float(value)
    except ValueError:
        from email.utils import parsedate_to_datetime

        try:
            seconds = parsedate_to_datetime(value).timestamp() - time.time()
        except (TypeError, ValueError):
            seconds = 0.0
    return min(max(seconds, 0.0), cap)


def _is_tls_verification(exc: BaseException) -> bool:
    return type(exc).__name__ == "SSLCertVerificationError"


def _status_message(body: bytes) -> str:
    try:
        return str(json.loads(body).get("message") or body.decode(errors="replace"))
    except (ValueError, AttributeError):
        return body.decode(errors="replace")


__all__ = ["Endpoint", "HttpKubeView", "Unsupported", "in_cluster", "load_kubeconfig", "parse_server"]
