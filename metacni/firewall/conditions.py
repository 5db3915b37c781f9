"""The portmap ``conditionsV4``/``conditionsV6`` tokens, for either backend.

The reference rule: a first token starting with ``-`` or ``!`` is iptables syntax, anything
else nft syntax. iptables tokens are handed to :func:`metacni.firewall.iptables_rules.to_rule`
as-is. nft tokens are translated here into JSON match expressions, because libnftables'
JSON API has no way to splice in a fragment of nft text; we support the matches portmap
conditions are used for (addresses, interfaces, ports, marks) and refuse anything else
with an error naming the field, rather than guess.
"""

from __future__ import annotations

import ipaddress
from typing import TYPE_CHECKING

from .plan import bad

if TYPE_CHECKING:
    from typing import Any

OPS = {"==": "==", "eq": "==", "!=": "!=", "ne": "!="}
_IFACE_KEYS = ("iifname", "oifname")
_PORT_PROTOS = ("tcp", "udp", "sctp", "th")


def syntax(tokens: tuple[str, ...]) -> str | None:
    """'iptables', 'nftables' or None (no conditions)."""
    if not tokens:
        return None
    return "iptables" if tokens[0].startswith(("-", "!")) else "nftables"


def _value(text: str, where: str) -> Any:
    if "/" in text:
        try:
            net = ipaddress.ip_network(text, strict=False)
        except ValueError:
            raise bad(where, f"{text!r} is not a CIDR") from None
        return {"prefix": {"addr": str(net.network_address), "len": net.prefixlen}}
    return text


def nft_matches(tokens: tuple[str, ...], where: str) -> list[dict[str, Any]]:
    """Translate nft-syntax condition tokens into JSON ``match`` statements."""
    words = " ".join(tokens).split()
    out: list[dict[str, Any]] = []
    i = 0
    while i < len(words):
        word = words[i]
        if word == "meta" and i + 1 < len(words):
            i += 1
            word = words[i]
        if word in _IFACE_KEYS or word == "mark":
            left: dict[str, Any] = {"meta": {"key": word}}
            i += 1
        elif (
            word in ("ip", "ip6")
            and i + 1 < len(words)
            and words[i + 1] in ("saddr", "daddr")
            or word in _PORT_PROTOS
            and i + 1 < len(words)
            and words[i + 1] in ("sport", "dport")
        ):
            left = {"payload": {"protocol": word, "field": words[i + 1]}}
            i += 2
        else:
            raise bad(
                where,
                f"unsupported nft condition at {word!r} (supported: ip/ip6 saddr|daddr, "
                "iifname/oifname, mark, tcp/udp/sctp/th sport|dport)",
            )
        op = "=="
        if i < len(words) and words[i] in OPS:
            op = OPS[words[i]]
            i += 1
        if i >= len(words):
            raise bad(where, "condition is missing its value")
        raw = words[i]
        i += 1
        value: Any
        if (
            "payload" in left
            and left["payload"]["field"] in ("sport", "dport")
            or left.get("meta", {}).get("key") == "mark"
        ):
            try:
                value = int(raw, 0)
            except ValueError:
                raise bad(where, f"{raw!r} is not a number") from None
        elif "payload" in left:
            value = _value(raw, where)
        else:
            value = raw.strip('"')
        out.append({"match": {"op": op, "left": left, "right": value}})
    return out
