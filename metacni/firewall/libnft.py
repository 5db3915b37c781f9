"""A minimal ctypes binding to libnftables, driven through its JSON API.

Why our own wrapper: the ``nftables`` Python module is not published on PyPI (it ships only
with distribution packages built for the system Python), so it cannot be a dependency of
a pip-installed project running on pyenv's interpreter. libnftables itself is a stable C
library with six functions we need; JSON in and JSON out gives us structured rule
listings (with handles for deletion) and lets us build transactions as data instead of
quoting nft syntax by hand.

Namespaces: a context's netlink socket is opened when the context is created, in the
network namespace of the *creating thread*, and stays there (a context made in netns A and
used from a thread in netns B changes A's rule set). A context is not thread
safe. :func:`pooled` hands out one reused context per netns under a lock, made on first
use: an ADD that needs only raw netlink (:mod:`metacni.netlink.nftables` on the entry's
:attr:`PoolEntry.netlink` socket) never makes one (nor fills libnftables' cache). The entry
keeps that socket because closing a netfilter netlink socket waits for pending nf_tables
destroy work after a deletion.

Why a pool: freeing a context whose batches deleted rules waits for the kernel's
nf_tables destroy work on the socket's release (an RCU grace period), many times the cost
of the same delete batch on a reused context (figures: bench/README.md). A pool entry pins
its netns (its netfilter socket, opened with it, holds a reference), so entries are bounded
(:data:`POOL_MAX`, least recently used closed first) and callers drop a netns's entry when
they removed the last of their tables there (:func:`release`).

A buffer of commands given to :meth:`Nft.run` is one netlink batch: the kernel applies all
of it or none of it, which is what makes our ADD and DEL atomic.
"""

from __future__ import annotations

import ctypes
import json
import os
import threading
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from metacni.kernel.netns import current_netns_path
from metacni.netlink import nftables as nftnl
from metacni.netlink.core import Socket

if TYPE_CHECKING:
    from typing import Any

    from .nftrules import Elem

NFT_CTX_DEFAULT = 0
NFT_CTX_OUTPUT_HANDLE = 1 << 3
NFT_CTX_OUTPUT_JSON = 1 << 4

_lib: ctypes.CDLL | None = None
_lib_lock = threading.Lock()


class NftError(Exception):
    """libnftables refused a command; ``message`` is its error buffer."""


def _load() -> ctypes.CDLL:
    global _lib
    with _lib_lock:
        if _lib is None:
            try:  # the soname first; find_library (it runs ldconfig) only for other names
                lib = ctypes.CDLL("libnftables.so.1", use_errno=True)
            except OSError:
                from ctypes.util import find_library

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
    st = current_netns_path().stat()
    return st.st_dev, st.st_ino


_home: tuple[int, int] | None = None


def set_home() -> None:
    """Declare the calling thread's netns the process's home (the daemon, at start): a
    namespace it lives in, so a pooled entry there never needs unpinning (:func:`at_home`)."""
    global _home
    _home = netns_key()


def at_home() -> bool:
    """True when the calling thread is in the netns :func:`set_home` declared."""
    return _home is not None and _home == netns_key()


class PoolState:
    """What the firewall remembers about one netns while its pool entry lives.

    """

    __slots__ = ("detected", "foreign", "owned", "tables")

    def __init__(self) -> None:
        #: features whose nftables table this process ensured here (:mod:`.nft`)
        self.tables: set[str] = set()
        #: (feature, attachment tag) -> (chains, map elements) this process added here: DEL
        #: deletes them without reading (:mod:`.nft`)
        self.owned: dict[tuple[str, str], tuple[list[str], list[Elem]]] = {}
        #: (when listed, foreign forward base chains as (family, table, name)) (:mod:`.nft`)
        self.foreign: tuple[float, list[tuple[str, str, str]]] | None = None
        #: feature -> (backend name, when detected) (:mod:`.backend`)
        self.detected: dict[str, tuple[str, float]] = {}


@dataclass
class PoolEntry:
    """One netns's reused context, plus state callers remember while it lives.

    ``state`` dies with the entry: the entry pins the netns, so its key cannot be reused by
    a new namespace while the state is kept.
    """

    lock: threading.Lock = field(default_factory=threading.Lock)
    state: PoolState = field(default_factory=PoolState)
    dropped: bool = False
    sock: Socket | None = None  # see netlink
    context: Nft | None = None  # see nft

    @property
    def netlink(self) -> Socket:
        """The netns's NETLINK_NETFILTER socket, opened with the entry (in its netns)."""
        if self.sock is None:
            self.sock = nftnl.socket()
        return self.sock

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
_pool_lock = threading.Lock()


def _reset_after_fork() -> None:
    global _pool_lock
    _pool.clear()  # the child must not free (or share) the parent's sockets
    _pool_lock = threading.Lock()


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
                entry.netlink  # noqa: B018 -- opened here, in this thread's netns: pins it while the entry lives
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
