"""SHA-2 digests without ``hashlib``'s import cost.

Chain names, rule comments and veth names are hashes of the attachment identity, computed on
every CNI call. ``import hashlib`` loads the OpenSSL binding (~5 ms per process here, paid by
every standalone call); CPython's built-in SHA-2 implementations give the same digests for
the few bytes hashed here. Other interpreters fall back to ``hashlib``.
"""

from __future__ import annotations

from typing import Any


def _builtin(name: str) -> Any:
    for module in ("_sha2", f"_{name}"):  # CPython 3.12+, then 3.9-3.11
        try:
            return getattr(__import__(module), name)
        except (ImportError, AttributeError):
            continue
    import hashlib

    return getattr(hashlib, name)


_sha256 = _builtin("sha256")
_sha512 = _builtin("sha512")


def sha256_hex(text: str) -> str:
    return str(_sha256(text.encode()).hexdigest())


def sha512_hex(text: str) -> str:
    return str(_sha512(text.encode()).hexdigest())
