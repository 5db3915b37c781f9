"""A minimal ctypes binding to libnftables, driven through its JSON API.

Why our own wrapper: the ``nftables`` Python module is not published on PyPI (it ships only
with distribution packages built for the system Python), so it cannot be a dependency of
a pip-installed project running on pyenv's interpreter. libnftables itself is a stable C
library with six functions we need; JSON in and JSON out gives us structured rule
listings (with handles for deletion) and lets us build transactions as data instead of
quoting nft syntax by hand.

Namespaces: libnftables opens its netlink socket lazily per command, in the network
namespace of the *calling thread*. Every context is therefore created and used inside one
``with netns.enter(...)`` block and never shared between threads.

A buffer of commands given to :meth:`Nft.run` is one netlink batch: the kernel applies all
of it or none of it, which is what makes our ADD and DEL atomic.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import json
import threading
from typing import Any

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
            name = ctypes.util.find_library("nftables") or "libnftables.so.1"
            lib = ctypes.CDLL(name, use_errno=True)
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

    def list_tables(self) -> list[dict[str, Any]]:
        """The table objects only (no chains or rules): the cheapest "is it there" query."""
        data = self.run([{"list": {"tables": None}}])
        return [obj["table"] for obj in data.get("nftables", []) if "table" in obj]

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
