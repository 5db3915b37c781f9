"""A minimal ctypes binding to libnftables, driven through its JSON API.

Why our own wrapper: the ``nftables`` Python module is not published on PyPI (it ships only
with distribution packages built for the system Python), so it cannot be a dependency of
a pip-installed project running on pyenv's interpreter. libnftables itself is a stable C
library with six functions we need; JSON in and JSON out gives us structured rule
listings (with handles for deletion) and lets us build transactions as data instead of
quoting nft syntax by hand.

Namespaces: a context's netlink socket is opened when the context is created, in the
network namespace of the *creating thread*, and stays there (measured: a context made in
netns A and used from a thread in netns B changes A's rule set). A context is not thread
safe. :func:`pooled` hands out one reused context per netns under a lock, made on first
use: an ADD that needs only raw netlink (:func:`chain_use`, :func:`raw_batch`) never pays
for one (~0.4 ms, plus libnftables' cache fill on its first command).

Why a pool: freeing a context whose batches deleted rules waits for the kernel's
nf_tables destroy work on the socket's release (an RCU grace period): 16 ms per
``nft_ctx_free`` measured on this 6.18 kernel, against 0.3 ms for the same delete batch on
a reused context. A pool entry pins its netns (its netfilter socket, opened with it, holds
a reference), so entries are bounded (:data:`POOL_MAX`, least recently used closed first)
and callers drop a netns's entry when they removed the last of their tables there
(:func:`release`).

A buffer of commands given to :meth:`Nft.run` is one netlink batch: the kernel applies all
of it or none of it, which is what makes our ADD and DEL atomic.
"""

from __future__ import annotations

import _socket  # not socket: its import costs ~3 ms per standalone CNI call
import _thread  # not threading (its import costs every standalone CNI call): locks and get_native_id only
import ctypes
import itertools
import json
import os
import struct
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager

from metacni.kernel.nlcodec import attr, message, nested, parse_attrs, string
from metacni.spec.record import field, record

TYPE_CHECKING = False  # typing costs ~5 ms per standalone CNI call; mypy treats this name as True
if TYPE_CHECKING:
    from typing import Any

NFT_CTX_DEFAULT = 0
NFT_CTX_OUTPUT_HANDLE = 1 << 3
NFT_CTX_OUTPUT_JSON = 1 << 4

_lib: ctypes.CDLL | None = None
_lib_lock = _thread.allocate_lock()


class NftError(Exception):
    """libnftables refused a command; ``message`` is its error buffer."""


def _load() -> ctypes.CDLL:
    global _lib
    with _lib_lock:
        if _lib is None:
            try:  # the soname first: find_library runs ldconfig in a subprocess, ~8 ms per CNI process
                lib = ctypes.CDLL("libnftables.so.1", use_errno=True)
            except OSError:
                from ctypes.util import find_library  # imports subprocess and shutil

                lib = ctypes.CDLL(find_library("nftables") or "libnftables.so", use_errno=True)
            lib.nft_ctx_new.restype = ctypes.c_void_p
            lib.nft_ctx_new.argtypes = [ctypes.c_uint32]
            lib.nft_ctx_free.restype = None
            lib.nft_ctx_free.argtypes = [ctypes.c_void_p]
            lib.nft_ctx_output_get_flags.restype = ctypes.c_uint
            lib.nft_ctx_output_get_flags.argtypes = [ctypes.c_void_p]
            lib.nft_ctx_output_set_flags.restype = None
            lib.nft_ctx_output_set_flags.argtypes = [ctypes.c_void_p, ctypes.c_uint]
            for fn in ("nft_ctx_buffer_output", "nft_ctx_buffer_error"):
                getattr(lib, fn).restype = ctypes.c_int
                getattr(lib, fn).argtypes = [ctypes.c_void_p]
            for fn in ("nft_ctx_get_output_buffer", "nft_ctx_get_error_buffer"):
                getattr(lib, fn).restype = ctypes.c_char_p
                getattr(lib, fn).argtypes = [ctypes.c_void_p]
            lib.nft_run_cmd_from_buffer.restype = ctypes.c_int
            lib.nft_run_cmd_from_buffer.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
            _lib = lib
        return _lib


def available() -> bool:
    """True when libnftables can be loaded on this node."""
    try:
        _load()
    except OSError:
        return False
    return True


class Nft:
    """One libnftables context in JSON mode. Create it inside the target netns."""

    def __init__(self) -> None:
        self._lib = _load()
        ctx = self._lib.nft_ctx_new(NFT_CTX_DEFAULT)
        if not ctx:
            raise NftError("nft_ctx_new failed")
        self._ctx: int | None = ctx
        flags = self._lib.nft_ctx_output_get_flags(ctx)
        self._lib.nft_ctx_output_set_flags(ctx, flags | NFT_CTX_OUTPUT_JSON | NFT_CTX_OUTPUT_HANDLE)
        self._lib.nft_ctx_buffer_output(ctx)
        self._lib.nft_ctx_buffer_error(ctx)

    def close(self) -> None:
        if self._ctx:
            self._lib.nft_ctx_free(self._ctx)
            self._ctx = None

    def __enter__(self) -> Nft:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def run(self, commands: list[dict[str, Any]]) -> dict[str, Any]:
        """Run ``commands`` (JSON command objects) as one atomic batch; return parsed output."""
        if not commands:
            return {}
        return self._run_raw(json.dumps({"nftables": commands}))

    def _run_raw(self, text: str) -> dict[str, Any]:
        if not self._ctx:
            raise NftError("context closed")
        rc = self._lib.nft_run_cmd_from_buffer(self._ctx, text.encode())
        out = (self._lib.nft_ctx_get_output_buffer(self._ctx) or b"").decode()
        err = (self._lib.nft_ctx_get_error_buffer(self._ctx) or b"").decode()
        if rc != 0:
            raise NftError(err.strip() or f"nft command failed (rc={rc})")
        return json.loads(out) if out.strip() else {}

    def list_ruleset(self) -> list[dict[str, Any]]:
        """The whole ruleset as the JSON objects under ``nftables`` (metainfo dropped)."""
        data = self.run([{"list": {"ruleset": None}}])
        return [obj for obj in data.get("nftables", []) if "metainfo" not in obj]

    def list_chains(self) -> list[dict[str, Any]]:
        """Every chain object (with hook, priority and policy) without its rules."""
        data = self.run([{"list": {"chains": None}}])
        return [obj["chain"] for obj in data.get("nftables", []) if "chain" in obj]

    def list_chain(self, family: str, table: str, name: str) -> list[dict[str, Any]] | None:
        """One chain and its rules (objects under ``nftables``), or None when it does not exist."""
        try:
            data = self.run([{"list": {"chain": {"family": family, "table": table, "name": name}}}])
        except NftError:
            return None
        return [obj for obj in data.get("nftables", []) if "metainfo" not in obj]

    def list_table(self, family: str, name: str) -> list[dict[str, Any]] | None:
        """Objects of one table, or None when the table does not exist."""
        try:
            data = self.run([{"list": {"table": {"family": family, "name": name}}}])
        except NftError:
            return None
        return [obj for obj in data.get("nftables", []) if "metainfo" not in obj]


# ---------------------------------------------------------------------- per-netns context pool
#: contexts kept open at once (each pins its netns); a node daemon needs one
POOL_MAX = 4


def netns_key() -> tuple[int, int]:
    """(st_dev, st_ino) of the calling thread's network namespace."""
    st = os.stat(f"/proc/self/task/{_thread.get_native_id()}/ns/net")
    return st.st_dev, st.st_ino


@record()
class PoolEntry:
    """One netns's reused context, plus state callers remember while it lives.

    ``state`` dies with the entry: the entry pins the netns, so its key cannot be reused by
    a new namespace while the state is kept.
    """

    lock: _thread.LockType = field(default_factory=_thread.allocate_lock)
    state: dict[str, Any] = field(default_factory=dict)
    dropped: bool = False
    sock: _socket.socket | None = None  # see chain_use
    context: Nft | None = None  # see nft

    @property
    def nft(self) -> Nft:
        """The netns's libnftables context, made on first use (only threads in the entry's
        netns get the entry, so it binds there)."""
        if self.context is None:
            self.context = Nft()
        return self.context

    def close(self) -> None:
        self.dropped = True
        if self.context is not None:
            self.context.close()
        if self.sock is not None:
            self.sock.close()
            self.sock = None


_pool: OrderedDict[tuple[int, int], PoolEntry] = OrderedDict()
_pool_lock = _thread.allocate_lock()


def _reset_after_fork() -> None:
    global _pool_lock
    _pool.clear()  # the child must not free (or share) the parent's sockets
    _pool_lock = _thread.allocate_lock()


os.register_at_fork(after_in_child=_reset_after_fork)


@contextmanager
def pooled() -> Iterator[PoolEntry]:
    """The calling thread's netns's context, held exclusively for the block."""
    key = netns_key()
    while True:
        evicted: list[PoolEntry] = []
        with _pool_lock:
            entry = _pool.get(key)
            if entry is None:
                entry = PoolEntry()
                _sock(entry)  # opened here, in this thread's netns: pins it while the entry lives
                _pool[key] = entry
                while len(_pool) > POOL_MAX:
                    evicted.append(_pool.popitem(last=False)[1])
            else:
                _pool.move_to_end(key)
        for old in evicted:
            _close_entry(old)
        with entry.lock:
            if entry.dropped:  # released while we waited for it: take a fresh one
                continue
            yield entry
            return


def _close_entry(entry: PoolEntry) -> None:
    with entry.lock:
        entry.close()


def release(entry: PoolEntry) -> None:
    """Close ``entry`` (its netns may go away now). Call with ``entry.lock`` held."""
    with _pool_lock:
        for key, value in list(_pool.items()):
            if value is entry:
                del _pool[key]
    entry.close()


def pooled_netns() -> list[tuple[int, int]]:
    """Keys (:func:`netns_key`) of the namespaces whose context is pooled (each is pinned)."""
    with _pool_lock:
        return list(_pool)


# ---------------------------------------------------------------------- one raw query
NFPROTO = {"inet": 1, "ip": 2, "ip6": 10, "bridge": 7}
_NFT_MSG_GETTABLE = (10 << 8) | 1  # NFNL_SUBSYS_NFTABLES, NFT_MSG_GETTABLE
_NFT_MSG_GETCHAIN = (10 << 8) | 4  # NFNL_SUBSYS_NFTABLES, NFT_MSG_GETCHAIN
_NFTA_TABLE_NAME = 1
_NFTA_CHAIN_TABLE, _NFTA_CHAIN_NAME, _NFTA_CHAIN_USE = 1, 3, 6


def _sock(entry: PoolEntry) -> _socket.socket:
    if entry.sock is None:  # opened in the caller's thread: the entry's netns
        entry.sock = _socket.socket(_socket.AF_NETLINK, _socket.SOCK_RAW | _socket.SOCK_CLOEXEC, 12)  # NETFILTER
    return entry.sock


def chain_use(entry: PoolEntry, family: str, table: str, chain: str) -> int | None:
    """The kernel's use count of a chain (its rules + jumps/gotos/map elements to it), or
    None when it does not exist. One NFT_MSG_GETCHAIN round trip (~35 us) on the entry's
    netfilter socket: libnftables does not expose the count, and its cheapest command
    fills a cache first. The socket is kept with the entry because closing a netfilter
    netlink socket waits for pending nf_tables destroy work (~10 ms after a deletion).
    """
    body = struct.pack("=BBH", NFPROTO[family], 0, 0)
    body += string(_NFTA_CHAIN_TABLE, table) + string(_NFTA_CHAIN_NAME, chain)
    data = _get(entry, _NFT_MSG_GETCHAIN, body, f"GETCHAIN {family} {table} {chain}")
    if data is None:
        return None
    length = struct.unpack_from("=I", data)[0]
    use = parse_attrs(data[:length], 16 + 4).get(_NFTA_CHAIN_USE)  # after nlmsghdr + nfgenmsg
    if use is None or len(use) < 4:
        raise NftError(f"GETCHAIN {family} {table} {chain}: no use count in the reply")
    return int(struct.unpack_from(">I", use)[0])  # netfilter attributes are big-endian


def table_exists(entry: PoolEntry, family: str, table: str) -> bool:
    """Whether a table exists: one NFT_MSG_GETTABLE round trip, no cache fill."""
    body = struct.pack("=BBH", NFPROTO[family], 0, 0) + string(_NFTA_TABLE_NAME, table)
    return _get(entry, _NFT_MSG_GETTABLE, body, f"GETTABLE {family} {table}") is not None


def _get(entry: PoolEntry, kind: int, body: bytes, what: str) -> bytes | None:
    """One GET request's answer on the entry's socket; None when the object does not exist."""
    sock = _sock(entry)
    sock.sendto(message(kind, 0x1, 1, body), (0, 0))  # NLM_F_REQUEST
    data = sock.recv(65536)
    if struct.unpack_from("=H", data, 4)[0] == 2:  # NLMSG_ERROR
        errno = -struct.unpack_from("=i", data, 16)[0]
        if errno == 2:  # ENOENT
            return None
        raise NftError(f"{what}: {os.strerror(errno)}")
    return data


# ---------------------------------------------------------------------- raw batches
#: NFT_MSG_* of the objects a raw batch handles
_NEWCHAIN, _DELCHAIN, NEWRULE, _NEWSETELEM, _DELSETELEM = 3, 5, 6, 12, 14
#: extra netlink flags per message type, as libnftables sends them: NLM_F_CREATE for
#: objects (no NLM_F_EXCL: adding what exists is a no-op), NLM_F_CREATE|NLM_F_APPEND for rules
_FLAGS = {_NEWCHAIN: 0x400, _NEWSETELEM: 0x400, NEWRULE: 0x400 | 0x800}
_NFT_JUMP = -3


def raw_chain(op: str, family: str, table: str, chain: str) -> tuple[int, bytes]:
    """``add``/``delete`` chain message body for :func:`raw_batch`."""
    body = struct.pack("=BBH", NFPROTO[family], 0, 0) + string(1, table) + string(3, chain)
    return (_NEWCHAIN if op == "add" else _DELCHAIN), body


def raw_element(op: str, family: str, table: str, name: str, key: bytes, jump: str | None = None) -> tuple[int, bytes]:
    """``add`` (with a ``jump`` verdict) / ``delete`` map element message body; ``key`` is
    the element's key as the kernel stores it (concatenations: each field padded to 4 bytes)."""
    elem = [nested(1, attr(1, key))]  # NFTA_SET_ELEM_KEY { NFTA_DATA_VALUE }
    if jump is not None:  # NFTA_SET_ELEM_DATA { NFTA_DATA_VERDICT { CODE, CHAIN } }
        verdict = attr(1, struct.pack(">i", _NFT_JUMP)) + string(2, jump)
        elem.append(nested(2, nested(2, verdict)))
    body = struct.pack("=BBH", NFPROTO[family], 0, 0) + string(1, table) + string(2, name)
    body += nested(3, nested(1, *elem))  # NFTA_SET_ELEM_LIST_ELEMENTS { NFTA_LIST_ELEM { .. } }
    return (_NEWSETELEM if op == "add" else _DELSETELEM), body


def raw_batch(entry: PoolEntry, messages: list[tuple[int, bytes]]) -> None:
    """Send ``messages`` as one nf_tables transaction on the entry's socket; NftError if the
    kernel refused any (then none applied). Rules (:mod:`.nftraw`) are appended.

    Why not libnftables: before each command it fills a cache with every chain and set of
    the netns (one chain per attachment here, so ~1.5 ms with 100 pods and growing),
    while our per-attachment batches need no lookups at all.
    """
    sock = _sock(entry)
    base = _next_seq()
    batch_genmsg = struct.pack("=BBH", 0, 0, _socket.htons(10))  # res_id: NFNL_SUBSYS_NFTABLES
    out = [message(0x10, 0x1, base, batch_genmsg)]  # NFNL_MSG_BATCH_BEGIN
    for i, (msg, body) in enumerate(messages, 1):
        flags = 0x1 | 0x4 | _FLAGS.get(msg, 0)  # REQUEST|ACK
        out.append(message((10 << 8) | msg, flags, base + i, body))
    end = base + len(messages) + 1
    out.append(message(0x11, 0x1, end, batch_genmsg))  # NFNL_MSG_BATCH_END
    sock.sendto(b"".join(out), (0, 0))
    pending, errors = set(range(base + 1, end)), []
    while pending:
        data = sock.recv(65536)
        pos = 0
        while pos + 16 <= len(data):
            length, kind, _flags, seq = struct.unpack_from("=IHHI", data, pos)
            if kind == 2:  # NLMSG_ERROR: 0 is the ACK
                code = -struct.unpack_from("=i", data, pos + 16)[0]
                if code:
                    errors.append(f"message {seq - base}: {os.strerror(code)}")
                pending.discard(seq)
            pos += (length + 3) & ~3 if length else len(data)
        if errors:
            break  # an aborted batch acknowledges nothing after the error
    if errors:
        _drain(sock)
        raise NftError("; ".join(errors))


_seqs = itertools.count(1000, 1000)  # next() is atomic under the GIL; no lock to inherit on fork


def _next_seq() -> int:
    return next(_seqs) % (1 << 30)


def _drain(sock: _socket.socket) -> None:
    """Drop late replies of a failed batch so the next request reads its own."""
    sock.setblocking(False)
    try:
        while True:
            sock.recv(65536)
    except BlockingIOError:
        pass
    finally:
        sock.setblocking(True)
