#!/usr/bin/env python3
"""metacni shim: the CNI executable in binDir. Standard library only, Python 3.9+.

A CNI plugin is a fresh process per call, and importing metacni's dependencies costs far more
than the reference Go chain takes for a whole ADD. So this file forwards the call (environment
and stdin) to the warm ``metacni daemon`` over a root-only unix socket and prints its answer.

Framing: one request and one reply per connection, each a 4-byte big-endian length followed by
a UTF-8 JSON object. Not HTTP: ``http.client`` pulls in ``email``/``ssl`` and costs tens of
milliseconds per call here, more than the rest of the shim; the daemon serves HTTP health and
metrics on its TCP port for kubelet and Prometheus instead.

When the daemon cannot be reached the call runs in-process if the metacni package is importable
(standalone mode, lazy imports); otherwise the shim answers CNI error 11 ("try again later").
A DEL in that situation succeeds after logging: teardown must never wait on a missing daemon,
and the daemon's periodic GC reclaims what the skipped DEL would have released.
"""

from __future__ import annotations

import json
import os
import socket
import struct
import sys

DEFAULT_SOCKET = "/run/metacni/metacni.sock"
# Kept equal to metacni.spec.versions.ALL_VERSIONS (a test checks), so VERSION needs no daemon.
SUPPORTED_VERSIONS = ("0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0")
TRY_AGAIN_LATER = 11
PROTOCOL = 1
_HEADER = struct.Struct("!I")
MAX_FRAME = 64 * 1024 * 1024


class DaemonUnavailable(Exception):
    """The daemon socket is absent or refuses connections: nothing was sent."""


class DaemonLost(Exception):
    """The connection broke after the request was sent (the daemon died mid-call)."""


def _log(msg: str) -> None:
    sys.stderr.write(f"metacni-shim: {msg}\n")


def send_frame(sock: socket.socket, obj: object) -> None:
    data = json.dumps(obj, separators=(",", ":")).encode()
    sock.sendall(_HEADER.pack(len(data)) + data)


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    chunks = []
    while n:
        chunk = sock.recv(min(n, 1 << 20))
        if not chunk:
            raise ConnectionError("connection closed mid-frame")
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)


def recv_frame(sock: socket.socket) -> dict:
    (length,) = _HEADER.unpack(_recv_exact(sock, _HEADER.size))
    if length > MAX_FRAME:
        raise ValueError(f"frame of {length} bytes is too large")
    obj = json.loads(_recv_exact(sock, length))
    if not isinstance(obj, dict):
        raise ValueError("frame is not a JSON object")
    return obj


def _config(stdin: bytes) -> dict:
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


def socket_path(env: dict, conf: dict) -> str:
    """METACNI_SOCKET, else the config's ``daemonSocket``, else the default path."""
    path = env.get("METACNI_SOCKET") or conf.get("daemonSocket") or DEFAULT_SOCKET
    return str(path)


def call_daemon(path: str, request: dict, connect_timeout: float, timeout: float) -> dict:
    """One request/reply exchange: DaemonUnavailable before sending, DaemonLost after."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.settimeout(connect_timeout)
        try:
            sock.connect(path)
        except OSError as exc:
            raise DaemonUnavailable(f"cannot connect to {path}: {exc.strerror or exc}") from None
        sock.settimeout(timeout)
        try:
            send_frame(sock, request)
            return recv_frame(sock)
        except socket.timeout:  # noqa: UP041 - on 3.9 it is not TimeoutError
            raise
        except (OSError, ValueError) as exc:
            # The daemon may have done part of the work: never re-run it here, let the runtime retry.
            raise DaemonLost(f"connection to {path} lost: {exc}") from None
    finally:
        sock.close()


def _error(code: int, msg: str, details: str, version: object) -> dict:
    out: dict = {}
    if isinstance(version, str) and version in SUPPORTED_VERSIONS:
        out["cniVersion"] = version
    out.update(code=code, msg=msg, details=details)
    return out


def _emit(out, obj: object) -> None:
    out.write(json.dumps(obj) + "\n")
    out.flush()


def _standalone(env: dict, stdin: bytes, out) -> int | None:
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


def main(env: dict | None = None, stdin: bytes | None = None, out=None) -> int:
    env = dict(os.environ) if env is None else env
    out = out or sys.stdout
    if stdin is None:
        stdin = b"" if env.get("CNI_COMMAND") == "VERSION" and sys.stdin.isatty() else sys.stdin.buffer.read()
    command = env.get("CNI_COMMAND", "")
    if not command:
        sys.stderr.write("metacni shim: a CNI plugin; forwards calls to the metacni daemon.\n"
                         f"CNI protocol versions {', '.join(SUPPORTED_VERSIONS)}\n")
        return 0
    conf = _config(stdin)
    version = conf.get("cniVersion")
    if command == "VERSION":
        wanted = version if version in SUPPORTED_VERSIONS else SUPPORTED_VERSIONS[-1]
        _emit(out, {"cniVersion": wanted, "supportedVersions": list(SUPPORTED_VERSIONS)})
        return 0
    path = socket_path(env, conf)
    timeout = _float_env(env, "METACNI_TIMEOUT", 30.0 if command == "DEL" else 120.0)
    request = {"v": PROTOCOL, "op": "cni", "env": env, "stdin": stdin.decode("utf-8", "surrogateescape")}
    try:
        reply = call_daemon(path, request, _float_env(env, "METACNI_CONNECT_TIMEOUT", 1.0), timeout)
    except socket.timeout:  # noqa: UP041 - on 3.9 it is not TimeoutError
        _emit(out, _error(TRY_AGAIN_LATER, "metacni daemon did not answer in time",
                          f"{command} timed out after {timeout:g}s on {path}", version))
        return 1
    except DaemonLost as exc:
        _emit(out, _error(TRY_AGAIN_LATER, "metacni daemon went away during the call", str(exc), version))
        return 1
    except DaemonUnavailable as exc:
        status = _standalone(env, stdin, out)
        if status is not None:
            return status
        if command == "DEL":
            _log(f"DEL of {env.get('CNI_CONTAINERID', '')} skipped, daemon down ({exc}); "
                 "the daemon's GC will reclaim its resources")
            return 0
        _emit(out, _error(TRY_AGAIN_LATER, "metacni daemon is down",
                          f"{exc}; and the metacni package is not importable for standalone mode", version))
        return 1
    if reply.get("stderr"):
        sys.stderr.write(str(reply["stderr"]))
    if reply.get("stdout"):
        out.write(str(reply["stdout"]))
        out.flush()
    return int(reply.get("exit", 1))


if __name__ == "__main__":
    sys.exit(main())
