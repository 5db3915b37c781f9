"""iptables-save style token lists -> python-iptables rules, and rule introspection.

Our builders describe rules as the argv an operator would type (``-p tcp -m tcp --dport
80 -j DNAT --to-destination 10.0.0.2:80``): readable, testable without a kernel, and the
same form as the reference ``conditionsV4`` tokens, which are spliced in unchanged.
Conversion happens before anything is committed, so bad conditions fail the ADD cleanly.
"""

from __future__ import annotations

from typing import Any

import iptc

from metacni.spec.errors import CNIError, Code


def _is_chain_jump(self: Any) -> bool:
    """A target name that no xtables extension provides is a jump to a user chain.

    python-iptables' own test opens *every* table (``Rule.tables``) to ask whether the
    name is a chain, which instantiates raw/mangle/security in the netns as a side effect
    -- a change to the node's rule set -- and reuses handles across namespaces. Asking
    libxtables instead needs no kernel access.
    """
    if self._name in iptc.Target.STANDARD_TARGETS:
        return False
    return not self._xt.find_target(self._name)


iptc.Target._is_standard_target = _is_chain_jump  # see _is_chain_jump for why

_RULE_FIELDS = {
    "-s": "src",
    "--source": "src",
    "-d": "dst",
    "--destination": "dst",
    "-i": "in_interface",
    "--in-interface": "in_interface",
    "-o": "out_interface",
    "--out-interface": "out_interface",
    "-p": "protocol",
    "--protocol": "protocol",
}


def to_rule(tokens: list[str], version: int, where: str = "rule") -> Any:
    """Build an ``iptc.Rule``/``Rule6`` from tokens; CNIError code 7 naming ``where`` if invalid."""
    try:
        return _to_rule(tokens, version)
    except CNIError:
        raise
    except Exception as exc:  # python-iptables raises ValueError/XTablesError/IPTCError
        raise CNIError(
            Code.INVALID_CONFIG,
            f"invalid {where}",
            f"{where}: cannot parse iptables tokens {' '.join(tokens)!r}: {exc}",
        ) from None


def _to_rule(tokens: list[str], version: int) -> Any:
    rule = iptc.Rule() if version == 4 else iptc.Rule6()
    current: Any = None
    negate = False
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        if tok == "!":
            negate = True
            i += 1
            continue
        if tok in _RULE_FIELDS:
            value = tokens[i + 1]
            setattr(rule, _RULE_FIELDS[tok], ("!" if negate else "") + value)
            i, negate = i + 2, False
            continue
        if tok in ("-m", "--match"):
            current = rule.create_match(tokens[i + 1])
            i += 2
            continue
        if tok in ("-j", "--jump", "-g", "--goto"):
            current = rule.create_target(tokens[i + 1], goto=tok in ("-g", "--goto"))
            i += 2
            continue
        if tok.startswith("--") and current is not None:
            values = []
            j = i + 1
            while j < len(tokens) and not tokens[j].startswith("-") and tokens[j] != "!":
                values.append(tokens[j])
                j += 1
            value = " ".join(values)
            current.set_parameter(tok[2:], ("!" if negate else "") + value if (value or negate) else None)
            i, negate = j, False
            continue
        raise ValueError(f"unexpected token {tok!r}")
    if rule.target is None or not rule.target.name:
        rule.create_target("")  # no target: a counting rule, as iptables allows
    return rule


def comment_of(rule: Any) -> str | None:
    for match in rule.matches:
        if match.name == "comment":
            values = match.get_all_parameters().get("comment") or []
            return str(values[0]) if values else None
    return None


def target_of(rule: Any) -> str:
    target = rule.target
    return str(target.name) if target is not None else ""


def signature(rule: Any) -> tuple[Any, ...]:
    """A comparable summary of a rule (addresses, protocol, matches, target) for dedup and CHECK."""
    matches = tuple(
        sorted(
            (m.name, tuple(sorted((k, tuple(v)) for k, v in m.get_all_parameters().items())))
            for m in rule.matches
        )
    )
    target = rule.target
    tparams = tuple(sorted((k, tuple(v)) for k, v in target.get_all_parameters().items())) if target else ()
    return (
        rule.src,
        rule.dst,
        rule.in_interface,
        rule.out_interface,
        rule.protocol,
        matches,
        target_of(rule),
        tparams,
    )
