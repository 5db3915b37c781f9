"""Hex SHA-2 digests of text: chain names, rule comments and veth names hash the attachment identity."""

from __future__ import annotations

import hashlib


def sha256_hex(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def sha512_hex(text: str) -> str:
    return hashlib.sha512(text.encode()).hexdigest()
