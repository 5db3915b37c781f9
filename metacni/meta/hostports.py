"""A pod's annotation may not take a host port another attachment on the node holds.

The scheduler keeps a node's pod-spec ``hostPort``s apart; nothing does for the
``portMappings`` a pod asks for in its ``k8s.v1.cni.cncf.io/networks`` annotation (tenant input,
checked against the node policy by :func:`.selection_policy.check_selection`). Without this check such a
mapping could take another pod's host-port traffic: the nftables layer keeps one holder per
(address, protocol, port) and replaces a holder it finds (it assumes a stale one), and a mapping
for one of the node's addresses is looked up before the any-address ones.

So before anything is configured, every annotation mapping is compared with the host ports of
the node's other recorded attachments (their cached ``portMappings`` capability, the runtime's
pod-spec ports of the primary network included), as the scheduler compares pod-spec ports: same
protocol and port, and addresses that overlap (an unspecified ``hostIP`` overlaps every
address). A clash is code 7, naming the port but not the other pod (another tenant's). Read only
when a pod asks for host ports in its annotation.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from typing import Any

from metacni.engine.cache import CacheEntry
from metacni.spec.errors import CNIError, Code

from .networks import Delegate

#: the runtime capability holding host port mappings (runtimeConfig, cached per attachment)
PORT_MAPPINGS = "portMappings"


def _key(mapping: Mapping[str, Any]) -> tuple[str, int, ipaddress.IPv4Address | ipaddress.IPv6Address | None] | None:
    """(protocol, host port, host address or None for any) of a mapping; None when malformed."""
    port, protocol = mapping.get("hostPort"), mapping.get("protocol") or "tcp"
    if isinstance(port, bool) or not isinstance(port, int) or not isinstance(protocol, str):
        return None
    host_ip = mapping.get("hostIP")
    address = None
    if host_ip not in (None, ""):
        try:
            address = ipaddress.ip_address(str(host_ip))
        except ValueError:
            return None
        if address.is_unspecified:
            address = None
    return protocol.lower(), port, address


def _overlap(a: tuple[str, int, Any], b: tuple[str, int, Any]) -> bool:
    return a[:2] == b[:2] and (a[2] is None or b[2] is None or a[2] == b[2])


def check_free(delegates: Iterable[Delegate], entries: Iterable[CacheEntry], container_id: str, who: str) -> None:
    """Code 7 when a delegate's annotation ``portMappings`` (its selection's) overlaps a host port
    an attachment of another container holds (``entries``: the node's cached attachments)."""
    asked = [(d, m) for d in delegates if d.selection is not None for m in d.selection.port_mappings or []]
    if not asked:
        return
    held = [k for e in entries if e.container_id != container_id
            for m in (e.capability_args.get(PORT_MAPPINGS) or []) if isinstance(m, Mapping)
            if (k := _key(m)) is not None]
    for d, mapping in asked:
        want = _key(mapping)
        if want is not None and any(_overlap(want, k) for k in held):
            protocol, port, address = want
            on = f" on {address}" if address is not None else ""
            raise CNIError(Code.INVALID_CONFIG, "host port in use",
                           f"{who}: network {d.label}: hostPort {port}/{protocol}{on} is held by another pod's "
                           "attachment on this node; a pod's annotation may not take it")
