"""Attachment identity: reference chain-name hashes and the comment tags on our rules.

The reference plugins name per-container iptables chains from ``sha512(network + id)``;
operators grep for those names, so we keep them (:func:`dnat_chain`, :func:`masq_chain`).
Those hashes ignore the ifname, so on top of them every rule we install carries a comment
that starts with :func:`tag`, the reference nftables masquerade formula, which covers the
full (network, container id, ifname) identity. DEL matches on that prefix alone.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from metacni.spec.digest import sha512_hex

#: nftables keeps at most 128 bytes of rule comment (NFT_USERDATA_MAXLEN); iptables 255.
COMMENT_MAX = 128


def _sha512_hex(text: str) -> str:
    return sha512_hex(text)


def prefixed_chain(prefix: str, network: str, container_id: str) -> str:
    """The reference ``utils.MustFormatChainNameWithPrefix``: ``CNI-<prefix><hash>`` cut to 28."""
    return ("CNI-" + prefix + _sha512_hex(network + container_id))[:28]


def dnat_chain(network: str, container_id: str) -> str:
    """portmap's per-container chain, ``CNI-DN-`` + 21 hex characters."""
    return prefixed_chain("DN-", network, container_id)


def snat_chain(network: str, container_id: str) -> str:
    """The legacy portmap ``CNI-SN-`` chain (removed on DEL if an old version left it)."""
    return prefixed_chain("SN-", network, container_id)


def masq_chain(network: str, container_id: str) -> str:
    """ipMasq's per-container chain, ``CNI-`` + 24 hex characters."""
    return prefixed_chain("", network, container_id)


_ATTACHMENT_CHAIN = re.compile(r"^CNI-(DN-[0-9a-f]{21}|SN-[0-9a-f]{21}|[0-9a-f]{24})$")


def is_attachment_chain(name: str, prefixes: tuple[str, ...] = ("DN-", "SN-", "")) -> bool:
    """Whether ``name`` is a per-container iptables chain (:func:`prefixed_chain`) of one of
    ``prefixes`` (``""``: ipMasq's unprefixed ``CNI-<hash>``)."""
    m = _ATTACHMENT_CHAIN.fullmatch(name)
    if m is None:
        return False
    found = m.group(1)
    prefix = found[:3] if found[:3] in ("DN-", "SN-") else ""
    return prefix in prefixes


def network_tag(network: str) -> str:
    return _sha512_hex(network)[:16]


def attachment_tag(network: str, container_id: str, ifname: str) -> str:
    """hex16(sha512(network)) + '-' + hex16(sha512(ifname + ':' + id)), as the reference nft masq."""
    return f"{network_tag(network)}-{_sha512_hex(ifname + ':' + container_id)[:16]}"


def go_quote(text: str) -> str:
    """Go's ``%q`` for the common case (the reference iptables comments use it)."""
    out = ['"']
    for ch in text:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ch == "\r":
            out.append("\\r")
        elif not ch.isprintable():
            code = ord(ch)
            out.append(
                f"\\x{code:02x}"
                if code < 0x100
                else (f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}")
            )
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


@dataclass(frozen=True)
class Attachment:
    """One (network, container id, ifname) attachment: the only key DEL and GC need."""

    network: str
    container_id: str
    ifname: str

    @property
    def tag(self) -> str:
        return attachment_tag(self.network, self.container_id, self.ifname)

    def comment(self, kind: str) -> str:
        """``<tag>, <kind>, net: .., if: .., id: ..`` -- quotes removed, cut to the nft limit."""
        text = f"{self.tag}, {kind}, net: {self.network}, if: {self.ifname}, id: {self.container_id}"
        text = "".join(ch for ch in text.replace('"', "") if ch.isprintable())
        return _cut(text, COMMENT_MAX)

    def owns(self, comment: str | None, kind: str) -> bool:
        return bool(comment) and str(comment).startswith(f"{self.tag}, {kind},")


def _cut(text: str, limit: int) -> str:
    data = text.encode()[:limit]
    return data.decode(errors="ignore")


def parse_comment(comment: str | None) -> tuple[str, str, str] | None:
    """(network tag, attachment tag, kind) from one of our comments, or None if not ours."""
    if not comment:
        return None
    parts = str(comment).split(", ", 2)
    if len(parts) < 2:
        return None
    tag, kind = parts[0], parts[1]
    head, sep, tail = tag.partition("-")
    if not sep or len(head) != 16 or len(tail) != 16:
        return None
    if not all(c in "0123456789abcdef" for c in head + tail):
        return None
    return head, tag, kind
