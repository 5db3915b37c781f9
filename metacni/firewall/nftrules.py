"""libnftables JSON building blocks the feature modules describe their nftables layouts with.

Import-light on purpose (no libnftables, no typing at run time): every firewall plugin's
standalone call imports it. :class:`Wanted` is what one attachment needs; the engine
(:mod:`.nft`) turns it into chains, rules and verdict-map elements.
"""

from __future__ import annotations

import ipaddress
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from typing import Any

    Cmd = dict[str, Any]
    Key = Any  # a map key in libnftables JSON form: str, or {"concat": [...]}
    Elem = tuple[str, Key, str]  # (map, key, target chain)

FAMILY = "inet"
#: a per-attachment chain ends with a goto to this empty chain (see :mod:`.nft`)
ANCHOR = "attachments"
MULTICAST = {4: ipaddress.ip_network("224.0.0.0/4"), 6: ipaddress.ip_network("ff00::/8")}
L4: dict[str, Any] = {"meta": {"key": "l4proto"}}


def proto(version: int) -> str:
    return "ip" if version == 4 else "ip6"


def match(left: dict[str, Any], right: Any, op: str = "==") -> Cmd:
    return {"match": {"op": op, "left": left, "right": right}}


def payload(protocol: str, field: str) -> dict[str, Any]:
    return {"payload": {"protocol": protocol, "field": field}}


DPORT = payload("th", "dport")


def net(network: ipaddress.IPv4Network | ipaddress.IPv6Network) -> Any:
    if network.prefixlen == network.max_prefixlen:
        return str(network.network_address)
    return {"prefix": {"addr": str(network.network_address), "len": network.prefixlen}}


def fib_local() -> Cmd:
    return match({"fib": {"result": "type", "flags": ["daddr"]}}, "local")


def vmap(key: list[dict[str, Any]], name: str) -> Cmd:
    return {"vmap": {"key": key[0] if len(key) == 1 else {"concat": key}, "data": f"@{name}"}}


def chain(table: str, name: str, **base: Any) -> Cmd:
    return {"chain": {"family": FAMILY, "table": table, "name": name, **base}}


def rule(chain_name: str, exprs: list[Cmd], comment: str, table: str, family: str = FAMILY) -> Cmd:
    return {"rule": {"family": family, "table": table, "chain": chain_name, "expr": exprs, "comment": comment}}


#: verdict maps keyed by a pod address (masq, forward)
POD_MAPS: list[tuple[str, Any]] = [("pods4", "ipv4_addr"), ("pods6", "ipv6_addr")]


def pod_key(exprs: list[Cmd]) -> tuple[str, Key]:
    """The ``pods4``/``pods6`` element a rule starting with an address match belongs to."""
    left, right = exprs[0]["match"]["left"], exprs[0]["match"]["right"]
    return f"pods{4 if left['payload']['protocol'] == 'ip' else 6}", right


class Wanted:
    """What one attachment needs: its chains' rules and the map elements leading there."""

    __slots__ = ("chains", "elems")

    def __init__(self) -> None:
        self.chains: dict[str, list[list[Cmd]]] = {}
        self.elems: list[Elem] = []

    def put(self, chain_name: str, exprs: list[Cmd], elem: tuple[str, Key]) -> None:
        self.chains.setdefault(chain_name, []).append(exprs)
        if (elem[0], elem[1], chain_name) not in self.elems:
            self.elems.append((elem[0], elem[1], chain_name))
