"""The shim <-> daemon protocol, version 1: constants and the request body codec.

HTTP/1.1 over the daemon's root-only unix socket, one request per connection::

    POST /cni      Metacni-Protocol: 1, body {"env": {"CNI_...": "..."}, "config": "<base64 stdin>"}
    GET  /version  {"protocol": 1, "version": ..., "cniVersions": [...]}
    GET  /healthz  200 "ok" while the daemon serves
    GET  /readyz   the daemon's readiness state (JSON; 200 when ready, else 503)

The answer to ``/cni`` is exactly what the shim prints on stdout; the status tells it the exit
code (200: 0, anything else: 1). A DEL the shim could not deliver is recorded, with the same
body, as ``<pending dir>/<container id>.<ifname>.<hash>.json`` (:func:`record_name`) and
replayed by the daemon when it starts (:mod:`metacni.daemon.pending_dels`). Both sides live in
this repository: the daemon here, the static shim under ``shim/``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any

from metacni.spec.errors import CNIError, Code

PROTOCOL = 1
PROTOCOL_HEADER = "Metacni-Protocol"
DEFAULT_SOCKET = "/run/metacni/metacni.sock"
DEFAULT_CNI_DIR = "/var/lib/cni/metacni"
DEFAULT_PENDING_DIR = f"{DEFAULT_CNI_DIR}/pending-del"
MAX_BODY = 1024 * 1024  # a request body over this is refused (413, code 7) before it is read
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")


@dataclass(frozen=True)
class CNIRequest:
    """One CNI call as the shim sends it: its ``CNI_*``/``METACNI_*`` environment and stdin."""

    env: dict[str, str]
    stdin: bytes

    @property
    def command(self) -> str:
        return self.env.get("CNI_COMMAND", "")

    @property
    def container_id(self) -> str:
        return self.env.get("CNI_CONTAINERID", "")


def encode_request(env: dict[str, str], stdin: bytes) -> bytes:
    """The POST /cni body (and the pending-DEL record) for ``env`` and ``stdin``."""
    return json.dumps({"env": env, "config": base64.b64encode(stdin).decode()}).encode()


def decode_request(body: bytes) -> CNIRequest:
    """Parse a POST /cni body; :class:`CNIError` code 6 (decoding) names what is wrong."""
    try:
        doc: Any = json.loads(body)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        raise CNIError(Code.DECODE_FAILURE, "daemon request is not valid JSON", str(exc)) from None
    if not isinstance(doc, dict):
        raise CNIError(Code.DECODE_FAILURE, "daemon request must be a JSON object", type(doc).__name__)
    env, config = doc.get("env"), doc.get("config")
    if not isinstance(env, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in env.items()):
        raise CNIError(Code.DECODE_FAILURE, "daemon request field \"env\" must be an object of strings")
    if not isinstance(config, str):
        raise CNIError(Code.DECODE_FAILURE, "daemon request field \"config\" must be a base64 string")
    try:
        stdin = base64.b64decode(config, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise CNIError(Code.DECODE_FAILURE, "daemon request field \"config\" is not base64", str(exc)) from None
    return CNIRequest(dict(env), stdin)


#: pending-DEL record names: readable prefixes of at most these many bytes, then this many hex
#: digits of the key's SHA-256 (shim/metacni-shim.c's RECORD_* constants)
RECORD_ID_PART = 64
RECORD_IFNAME_PART = 16
RECORD_HASH_HEX = 32


def record_name(container_id: str, ifname: str) -> str:
    """The pending-DEL file name for an attachment, exactly as the shim writes it:
    ``<container id>.<ifname>.<hash>.json``. The two readable parts are the values' first 64 and
    16 bytes with any byte outside ``[A-Za-z0-9_.-]`` made ``_`` (``_`` when empty); the hash is
    the first 32 hex digits of SHA-256 over the *whole* values (``container id NUL ifname``, as
    bytes). So a name is at most 123 bytes whatever the runtime passes (its temporary file
    ``.<name>.<pid>.tmp`` stays far under NAME_MAX), and two attachments never share one: the
    full values are inside the record, which is what replay reads."""
    cid, ifn = _env_bytes(container_id), _env_bytes(ifname)
    digest = hashlib.sha256(cid + b"\0" + ifn).hexdigest()[:RECORD_HASH_HEX]
    return f"{_safe(cid, RECORD_ID_PART)}.{_safe(ifn, RECORD_IFNAME_PART)}.{digest}.json"


def _env_bytes(value: str) -> bytes:
    """The bytes the runtime passed (os.environ keeps undecodable ones as surrogate escapes)."""
    try:
        return value.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:  # a lone surrogate that no environment yields; still a name
        return value.encode("utf-8", "surrogatepass")


def _safe(part: bytes, limit: int) -> str:
    return _UNSAFE.sub("_", part[:limit].decode("latin-1")) or "_"


def error_body(code: int, msg: str, details: str = "", cni_version: str | None = None) -> bytes:
    """A CNI error object as the shim prints it (one line)."""
    return CNIError(code, msg, details).to_json(cni_version).encode() + b"\n"
