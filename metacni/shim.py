#!/usr/bin/env python3
"""metacni shim: the CNI executable in binDir. Standard library only, Python 3.9+.

A CNI plugin is a fresh process per call, and importing metacni's dependencies costs far more
than the reference Go chain takes for a whole ADD. So this file forwards the call (environment
and stdin) to the warm ``metacni daemon`` over a root-only unix socket and prints its answer.

It speaks protocol v1 (HTTP over the unix socket, see metacni/daemon/protocol.py). This file
is on its way out: the static C shim under shim/ replaces it.

When the daemon cannot be reached the call runs in-process if the metacni package is importable
(standalone mode, lazy imports); otherwise the shim answers CNI error 11 ("try again later").
A DEL in that situation succeeds after logging: teardown must never wait on a missing daemon,
and the daemon's periodic GC reclaims what the skipped DEL would have released. A call whose
connection breaks after it was sent is never re-run here (the daemon may have done half of it):
it is code 11 and the runtime retries.
"""

import _socket
import gc
import posix  # built in; ``os`` is not loaded under ``-S`` and importing it costs ~3 ms per call
import sys

DEFAULT_SOCKET = "/run/metacni/metacni.sock"
# Kept equal to metacni.spec.versions.ALL_VERSIONS (a test checks), so VERSION needs no daemon.
SUPPORTED_VERSIONS = ("0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0")
TRY_AGAIN_LATER = 11
MAGIC = b"MCNI"
PROTOCOL = 1
OP_CNI, OP_STATUS = b"c", b"s"
MAX_FIELD = 64 * 1024 * 1024
SocketTimeout = _socket.timeout  # not TimeoutError on 3.9


class DaemonUnavailable(ConnectionError):
    """The daemon socket is absent or refuses connections: nothing was sent."""


class DaemonLost(ConnectionError):
    """The connection broke after the request was sent (the daemon died mid-call)."""


def _log(msg: str) -> None:
    sys.stderr.write(f"metacni-shim: {msg}\n")


# ---------------------------------------------------------------------- framing (shared with the daemon)
def _u32(n: int) -> bytes:
    return n.to_bytes(4, "big")


def _field(data: bytes) -> bytes:
    return _u32(len(data)) + data


def encode_env(env: dict) -> bytes:
    return b"".join(f"{k}={v}".encode("utf-8", "surrogateescape") + b"\0" for k, v in env.items())


def decode_env(blob: bytes) -> dict:
    out = {}
    for item in blob.split(b"\0"):
        if item:
            key, _, value = item.partition(b"=")
            out[key.decode("utf-8", "surrogateescape")] = value.decode("utf-8", "surrogateescape")
    return out


def encode_request(op: bytes, env: dict, stdin: bytes) -> bytes:
    return MAGIC + bytes((PROTOCOL,)) + op + _field(encode_env(env)) + _field(stdin)


def encode_reply(exit_status: int, stdout: bytes, stderr: bytes) -> bytes:
    return _u32(exit_status) + _field(stdout) + _field(stderr)


def recv_exact(sock, n: int) -> bytes:
    chunks = []
    while n:
        chunk = sock.recv(min(n, 1 << 20))
        if not chunk:
            raise ConnectionError("connection closed mid-frame")
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)


def _recv_field(sock) -> bytes:
    length = int.from_bytes(recv_exact(sock, 4), "big")
    if length > MAX_FIELD:
        raise ValueError(f"field of {length} bytes is too large")
    return recv_exact(sock, length)


def read_request(sock) -> tuple:
    """(op, env, stdin) from a connection; ValueError on a malformed frame."""
    head = recv_exact(sock, 6)
    if head[:4] != MAGIC or head[4] != PROTOCOL:
        raise ValueError(f"not a metacni shim request (header {head!r})")
    return head[5:6], decode_env(_recv_field(sock)), _recv_field(sock)


def read_reply(sock) -> tuple:
    exit_status = int.from_bytes(recv_exact(sock, 4), "big")
    return exit_status, _recv_field(sock), _recv_field(sock)


def _http_request(op: bytes, env: dict, stdin: bytes) -> bytes:
    """Protocol v1 (metacni/daemon/protocol.py): POST /cni, or GET /readyz for the status op."""
    if op == OP_STATUS:  # the env is the status handler's parameters (e.g. waitReaperIdle)
        from urllib.parse import urlencode

        query = ("?" + urlencode(env)) if env else ""
        return b"GET /readyz%s HTTP/1.1\r\nHost: metacni\r\nConnection: close\r\n\r\n" % query.encode()
    import binascii
    import json

    sent = {k: v for k, v in env.items() if k.startswith(("CNI_", "METACNI_"))}
    body = json.dumps({"env": sent, "config": binascii.b2a_base64(stdin, newline=False).decode()}).encode()
    return (b"POST /cni HTTP/1.1\r\nHost: metacni\r\nContent-Type: application/json\r\n"
            b"Metacni-Protocol: %d\r\nConnection: close\r\nContent-Length: %d\r\n\r\n" % (PROTOCOL, len(body))) + body


def _http_reply(raw: bytes) -> tuple:
    head, sep, body = raw.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    if not sep or len(lines[0].split(b" ")) < 2:
        raise ValueError("not an HTTP answer")
    status = int(lines[0].split(b" ")[1])
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(b":") for line in lines[1:])}
    spoken = headers.get(b"metacni-protocol", b"none").decode("latin-1")
    if spoken != str(PROTOCOL):
        return 1, _error(TRY_AGAIN_LATER, f"daemon speaks protocol {spoken}", "reinstall the shim", b"").encode(), b""
    return (0 if status == 200 else 1), body, b""


def call_daemon(path: str, op: bytes, env: dict, stdin: bytes, connect_timeout: float, timeout: float) -> tuple:
    """One exchange → (exit, stdout, stderr): DaemonUnavailable before sending, DaemonLost after."""
    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    try:
        sock.settimeout(connect_timeout)
        try:
            sock.connect(path)
        except OSError as exc:
            raise DaemonUnavailable(f"cannot connect to {path}: {exc.strerror or exc}") from None
        sock.settimeout(timeout)
        try:
            sock.sendall(_http_request(op, env, stdin))
            chunks = []
            while True:
                chunk = sock.recv(1 << 16)
                if not chunk:
                    break
                chunks.append(chunk)
            return _http_reply(b"".join(chunks))
        except SocketTimeout:
            raise
        except (OSError, ValueError) as exc:
            raise DaemonLost(f"connection to {path} lost: {exc}") from None
    finally:
        sock.close()


# ---------------------------------------------------------------------- the CNI side
def _config(stdin: bytes) -> dict:
    import json  # only on error paths and VERSION: json imports re

    try:
        conf = json.loads(stdin or b"{}")
    except ValueError:
        return {}
    return conf if isinstance(conf, dict) else {}


def _float_env(env: dict, name: str, default: float) -> float:
    try:
        return float(env.get(name, default))
    except ValueError:
        return default


def socket_path(env: dict, stdin: bytes) -> str:
    """METACNI_SOCKET, else the config's ``daemonSocket``, else the default path. The config is
    parsed only when it mentions the key."""
    path = env.get("METACNI_SOCKET")
    if not path and b'"daemonSocket"' in stdin:
        path = _config(stdin).get("daemonSocket")
    return str(path or DEFAULT_SOCKET)


def _error(code: int, msg: str, details: str, stdin: bytes) -> str:
    import json

    out: dict = {}
    version = _config(stdin).get("cniVersion")
    if isinstance(version, str) and version in SUPPORTED_VERSIONS:
        out["cniVersion"] = version
    out.update(code=code, msg=msg, details=details)
    return json.dumps(out) + "\n"


def _write(out, text: str) -> None:
    out.write(text)
    out.flush()


def _standalone(env: dict, stdin: bytes, out) -> "int | None":
    """Run the call in this process when metacni is importable; None when it is not."""
    if sys.flags.no_site:
        # Installed with ``-S`` so the daemon path skips site-packages; the fallback needs them.
        import site

        site.main()
    try:
        from metacni.engine.skel import run_cni
    except ImportError:
        return None
    import io

    return int(run_cni(env, io.BytesIO(stdin), out))


def _environ() -> dict:
    return {k.decode("utf-8", "surrogateescape"): v.decode("utf-8", "surrogateescape")
            for k, v in posix.environ.items()}


def main(env: "dict | None" = None, stdin: "bytes | None" = None, out=None) -> int:
    env = _environ() if env is None else env
    out = out or sys.stdout
    command = env.get("CNI_COMMAND", "")
    if stdin is None:
        stdin = b"" if command == "VERSION" and sys.stdin.isatty() else sys.stdin.buffer.read()
    if not command:
        sys.stderr.write("metacni shim: a CNI plugin; forwards calls to the metacni daemon.\n"
                         f"CNI protocol versions {', '.join(SUPPORTED_VERSIONS)}\n")
        return 0
    if command == "VERSION":
        import json

        version = _config(stdin).get("cniVersion")
        wanted = version if version in SUPPORTED_VERSIONS else SUPPORTED_VERSIONS[-1]
        _write(out, json.dumps({"cniVersion": wanted, "supportedVersions": list(SUPPORTED_VERSIONS)}) + "\n")
        return 0
    path = socket_path(env, stdin)
    timeout = _float_env(env, "METACNI_TIMEOUT", 30.0 if command == "DEL" else 120.0)
    try:
        status, stdout, stderr = call_daemon(path, OP_CNI, env, stdin,
                                             _float_env(env, "METACNI_CONNECT_TIMEOUT", 1.0), timeout)
    except SocketTimeout:
        _write(out, _error(TRY_AGAIN_LATER, "metacni daemon did not answer in time",
                           f"{command} timed out after {timeout:g}s on {path}", stdin))
        return 1
    except DaemonLost as exc:
        _write(out, _error(TRY_AGAIN_LATER, "metacni daemon went away during the call", str(exc), stdin))
        return 1
    except DaemonUnavailable as exc:
        fallback = _standalone(env, stdin, out)
        if fallback is not None:
            return fallback
        if command == "DEL":
            _log(f"DEL of {env.get('CNI_CONTAINERID', '')} skipped, daemon down ({exc}); "
                 "the daemon's GC will reclaim its resources")
            return 0
        _write(out, _error(TRY_AGAIN_LATER, "metacni daemon is down",
                           f"{exc}; and the metacni package is not importable for standalone mode", stdin))
        return 1
    if stderr:
        sys.stderr.write(stderr.decode("utf-8", "replace"))
        sys.stderr.flush()
    if stdout:
        out.write(stdout.decode("utf-8", "replace"))
        out.flush()
    return status


def _exit(status: int) -> None:
    """Leave without the interpreter's module teardown: nothing but stdout and stderr holds state
    worth finalising (~2.7 ms of a ~17 ms shim call; ~15 ms after a standalone call, which
    imported ~150 modules). After a standalone call, first do the part of finalisation that
    matters: wait for non-daemon threads and run the atexit hooks (logging flushes its handlers
    there). The call's own files are already closed: state is written by ``with`` blocks and
    atomic renames, never left to a finaliser."""
    if "metacni" in sys.modules:
        threading = sys.modules.get("threading")
        if threading is not None:
            threading._shutdown()  # what finalisation calls: joins non-daemon threads, ends main's
        import atexit

        atexit._run_exitfuncs()
    sys.stdout.flush()
    sys.stderr.flush()
    posix._exit(status)


if __name__ == "__main__":
    # The interpreter put this script's directory first on sys.path: binDir, which holds other
    # plugins' binaries and nothing of ours. A stray ``json.py`` there must not shadow the
    # standard library (each import would also stat that directory first).
    if sys.path and not getattr(sys.flags, "safe_path", False):
        del sys.path[0]
    # This process lives for one call. The cyclic garbage collector only costs time here: while a
    # standalone call imports ~150 modules its passes walk every object again and again (~10 ms
    # of a ~130 ms ADD measured). Reference counting still frees what it can; exit frees the rest.
    gc.disable()
    _exit(main())
