"""The portmap ``conditionsV4``/``conditionsV6`` tokens, for either backend.

The reference rule: a first token starting with ``-`` or ``!`` is iptables syntax, anything
else nft syntax. The tokens may come from a NAD (tenant input, docs/security.md), so they may
only narrow which packets our rule matches: iptables tokens pass :func:`check_iptables_tokens`
(matches only -- no target, goto, table, command, protocol, or option of a match we wrote)
before they are spliced into the rule by :func:`metacni.firewall.iptables_rules.to_rule`.
nft tokens are translated here into JSON match expressions (so no verdict or statement can
be injected; addresses must parse as addresses, no ``@set`` or ``$var``), because libnftables'
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


#: address/interface fields of the rule itself: each takes one value
_RULE_FIELDS = frozenset({"-s", "--source", "-d", "--destination", "-i", "--in-interface",
                          "-o", "--out-interface"})
_MATCH = ("-m", "--match")
#: match extensions a condition may not load: ``comment`` (our rules' comments record their
#: owner; a forged one would let a pod's DEL or GC take another pod's rules), ``recent`` and
#: ``hashlimit`` (they write node-wide named state that the node's own firewall may read).
_REFUSED_MATCHES = frozenset({"comment", "recent", "hashlimit"})


def check_iptables_tokens(tokens: tuple[str, ...], where: str) -> None:
    """Code 7 naming ``where`` unless ``tokens`` are only matches: ``!``, ``-s/-d/-i/-o VALUE``,
    ``-m NAME`` (not in :data:`_REFUSED_MATCHES`) and ``--option [VALUE...]`` of a match the
    tokens themselves loaded. Refused: ``-j/--jump/-g/--goto`` (a verdict: accept, DNAT
    anywhere, jump into the node's chains), ``-t/--table``, commands (``-A``, ``-I``, ``-F``,
    ...), ``-p`` (the protocol comes from portMappings) and options before the first ``-m``
    (they would change the multiport match metacni wrote)."""
    for i, tok in enumerate(tokens):
        if not tok or any(c.isspace() or c == "\0" for c in tok):
            raise bad(where, f"token {i} {tok!r} is empty or holds whitespace; give each word as its own token")
    i, loaded = 0, False
    while i < len(tokens):
        tok = tokens[i]
        if tok == "!":
            i += 1
        elif tok in _RULE_FIELDS or tok in _MATCH:
            if i + 1 >= len(tokens) or tokens[i + 1].startswith("-") or tokens[i + 1] == "!":
                raise bad(where, f"{tok} needs a value")
            if tok in _MATCH:
                if tokens[i + 1] in _REFUSED_MATCHES:
                    raise bad(where, f"match {tokens[i + 1]!r} may not be used in conditions")
                loaded = True
            i += 2
        elif tok.startswith("--") and loaded and tok not in ("--jump", "--goto", "--table", "--protocol"):
            i += 1
            while i < len(tokens) and not tokens[i].startswith("-") and tokens[i] != "!":
                i += 1
        else:
            raise bad(where, f"{tok!r} is not a match option: conditions may only hold matches "
                             "(!, -s, -d, -i, -o, -m NAME --option VALUE); no target (-j/-g), table (-t), "
                             "command or protocol (-p)")


def _value(text: str, where: str) -> Any:
    if "/" in text:
        try:
            net = ipaddress.ip_network(text, strict=False)
        except ValueError:
            raise bad(where, f"{text!r} is not a CIDR") from None
        return {"prefix": {"addr": str(net.network_address), "len": net.prefixlen}}
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        raise bad(where, f"{text!r} is not an IP address or CIDR") from None


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
