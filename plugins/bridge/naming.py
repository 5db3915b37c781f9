"""Deterministic names and random MACs for the links the bridge plugin creates."""

from __future__ import annotations

import os

from metacni.spec.digest import sha256_hex


def host_veth_name(network: str, container_id: str, ifname: str) -> str:
    """``veth`` + 8 hex chars derived from the attachment identity.

    Deterministic (unlike the reference's random suffix) so that DEL and CHECK can find the
    host end without any state, and a second ADD of the same attachment collides instead of
    creating a second pair.
    """
    digest = sha256_hex(f"{network}\0{container_id}\0{ifname}")
    return f"veth{digest[:8]}"


def random_mac() -> str:
    """A random unicast, locally administered MAC.

    Chosen by us rather than the kernel so the result needs no read-back, and set
    explicitly on the bridge so its address no longer follows the lowest port MAC (which
    would change the gateway MAC under running pods).
    """
    raw = bytearray(os.urandom(6))
    raw[0] = (raw[0] & 0xFE) | 0x02
    return ":".join(f"{b:02x}" for b in raw)
