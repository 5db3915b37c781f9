"""The nftables backend: tables of our own, one atomic batch per ADD, DEL or GC.

Layout (all family ``inet``, so one table serves IPv4 and IPv6):

* ``metacni_portmap``: base chains ``prerouting``/``output`` (nat, dstnat) jump to
  ``hostports`` for ``fib daddr type local``; ``hostports`` holds one DNAT rule per mapping;
  ``masquerading`` (nat, srcnat) masquerades DNATed hairpin and localhost traffic.
* ``metacni_masq``: ``postrouting`` (nat, srcnat) skips multicast, then ``masq_checks``
  holds one masquerade rule per pod address.
* ``metacni_forward``: ``forward`` (filter) accepts to/from the pod. A drop verdict in any
  other base chain is final in nftables, so the same accept rules are also inserted at the
  top of foreign forward base chains that drop (iptables-nft's ``filter FORWARD`` with
  policy DROP, for instance); they carry the same comment and go away with the attachment.

Each rule's comment starts with the attachment tag (:mod:`.identity`). A table is deleted
in the same batch that removes its last attachment rule, so a node returns byte for byte
to the ruleset it had. A file lock serialises our read-modify-write batches across
processes (a DEL deciding "table now empty" must not race an ADD).

Reads are narrow (:meth:`NftablesBackend._snapshot`): our own table and, for the forward
feature, the foreign forward base chains -- never the whole rule set, whose size (and the
memory its parse costs) grows with everything else on the node. Every rule with our
comment lives in one of those places, so the narrow view finds all of them.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from metacni.spec.errors import CNIError, Code

from . import conditions, locking
from .identity import Attachment, parse_comment
from .libnft import Nft, NftError
from .plan import FORWARD, MASQ, PORTMAP, ForwardPlan, IPInterface, MasqPlan, Plan, PortmapPlan

log = logging.getLogger(__name__)

FAMILY = "inet"
TABLES = {PORTMAP: "metacni_portmap", MASQ: "metacni_masq", FORWARD: "metacni_forward"}
MULTICAST = {4: ipaddress.ip_network("224.0.0.0/4"), 6: ipaddress.ip_network("ff00::/8")}
LOCK_PATH = "/run/metacni-nftables.lock"

Cmd = dict[str, Any]


def _proto(version: int) -> str:
    return "ip" if version == 4 else "ip6"


def _match(left: dict[str, Any], right: Any, op: str = "==") -> Cmd:
    return {"match": {"op": op, "left": left, "right": right}}


def _payload(protocol: str, field: str) -> dict[str, Any]:
    return {"payload": {"protocol": protocol, "field": field}}


def _net(net: ipaddress.IPv4Network | ipaddress.IPv6Network) -> Any:
    if net.prefixlen == net.max_prefixlen:
        return str(net.network_address)
    return {"prefix": {"addr": str(net.network_address), "len": net.prefixlen}}


def _fib_local() -> Cmd:
    return _match({"fib": {"result": "type", "flags": ["daddr"]}}, "local")


# ---------------------------------------------------------------------- skeletons
def _chain(table: str, name: str, **base: Any) -> Cmd:
    return {"chain": {"family": FAMILY, "table": table, "name": name, **base}}


def _skeleton(kind: str) -> list[tuple[Cmd, list[list[Cmd]]]]:
    """(chain, static rules) of a feature's table, in creation order."""
    t = TABLES[kind]
    if kind == PORTMAP:
        jump = [_fib_local(), {"jump": {"target": "hostports"}}]
        return [
            (_chain(t, "hostports"), []),
            (_chain(t, "prerouting", type="nat", hook="prerouting", prio=-100, policy="accept"), [jump]),
            (_chain(t, "output", type="nat", hook="output", prio=-100, policy="accept"), [jump]),
            (_chain(t, "masquerading", type="nat", hook="postrouting", prio=100, policy="accept"), []),
        ]
    if kind == MASQ:
        skip = [
            [_match(_payload(_proto(v), "daddr"), _net(n)), {"return": None}] for v, n in MULTICAST.items()
        ]
        return [
            (_chain(t, "masq_checks"), []),
            (
                _chain(t, "postrouting", type="nat", hook="postrouting", prio=100, policy="accept"),
                [*skip, [{"goto": {"target": "masq_checks"}}]],
            ),
        ]
    return [(_chain(t, "forward", type="filter", hook="forward", prio=0, policy="accept"), [])]


# ---------------------------------------------------------------------- per-attachment rules
def _rule(chain: str, exprs: list[Cmd], comment: str, table: str, family: str = FAMILY) -> Cmd:
    return {"rule": {"family": family, "table": table, "chain": chain, "expr": exprs, "comment": comment}}


def portmap_rules(plan: PortmapPlan) -> list[Cmd]:
    t, comment = TABLES[PORTMAP], plan.attachment.comment(PORTMAP)
    out: list[Cmd] = []
    for cip in plan.container_ips():
        v, p = cip.version, _proto(cip.version)
        conds_raw = plan.conditions_v4 if v == 4 else plan.conditions_v6
        where = "conditionsV4" if v == 4 else "conditionsV6"
        conds = conditions.nft_matches(conds_raw, where) if conds_raw else []
        for m in plan.mappings_for(v):
            dst = [] if m.any_host_ip else [_match(_payload(p, "daddr"), str(m.host_ip))]
            fam = [] if dst else [_match({"meta": {"key": "nfproto"}}, "ipv4" if v == 4 else "ipv6")]
            exprs = [
                *fam,
                *dst,
                _match(_payload(m.protocol, "dport"), m.host_port),
                *conds,
                {"dnat": {"family": p, "addr": str(cip.ip), "port": m.container_port}},
            ]
            out.append(_rule("hostports", exprs, comment, t))
            if not plan.snat:
                continue
            masq = [
                _match(_payload(p, "daddr"), str(cip.ip)),
                _match(_payload(m.protocol, "dport"), m.container_port),
                _match({"ct": {"key": "status"}}, "dnat", op="in"),
            ]
            if not plan.masq_all:
                sources: list[Any] = [_net(cip.network)]
                if v == 4:
                    sources.append("127.0.0.1")
                masq.append(_match(_payload(p, "saddr"), {"set": sources}))
            out.append(_rule("masquerading", [*masq, {"masquerade": None}], comment, t))
    return out


def masq_rules(plan: MasqPlan) -> list[Cmd]:
    t, comment = TABLES[MASQ], plan.attachment.comment(MASQ)
    out: list[Cmd] = []
    for ip in plan.addresses:
        p = _proto(ip.version)
        exempt = [_net(n) for n in plan.exempt_for(ip)]
        exprs = [
            _match(_payload(p, "saddr"), str(ip.ip)),
            _match(_payload(p, "daddr"), {"set": exempt} if len(exempt) > 1 else exempt[0], op="!="),
            {"masquerade": None},
        ]
        out.append(_rule("masq_checks", exprs, comment, t))
    return out


def _accepts(
    addresses: tuple[IPInterface, ...], comment: str, table: str, chain: str, family: str
) -> list[Cmd]:
    out = []
    for ip in addresses:
        if family == "ip" and ip.version != 4 or family == "ip6" and ip.version != 6:
            continue
        for field in ("saddr", "daddr"):
            out.append(
                _rule(
                    chain,
                    [_match(_payload(_proto(ip.version), field), str(ip.ip)), {"accept": None}],
                    comment,
                    table,
                    family,
                )
            )
    return out


def forward_rules(plan: ForwardPlan) -> list[Cmd]:
    return _accepts(plan.addresses, plan.attachment.comment(FORWARD), TABLES[FORWARD], "forward", FAMILY)


def _is_foreign_forward(ch: dict[str, Any]) -> bool:
    """Another table's forward base chain that would drop pod traffic regardless of ours."""
    if ch.get("hook") != "forward" or ch.get("family") not in ("ip", "ip6", "inet"):
        return False
    if ch.get("family") == FAMILY and ch.get("table") in TABLES.values():
        return False
    return ch.get("policy") == "drop" or (ch.get("table") == "filter" and ch.get("name") == "FORWARD")


def _foreign_forward_chains(ruleset: list[Cmd]) -> list[dict[str, Any]]:
    return [obj["chain"] for obj in ruleset if "chain" in obj and _is_foreign_forward(obj["chain"])]


def rules_for(plan: Plan, ruleset: list[Cmd] | None = None) -> list[Cmd]:
    if isinstance(plan, PortmapPlan):
        return portmap_rules(plan)
    if isinstance(plan, MasqPlan):
        return masq_rules(plan)
    rules = forward_rules(plan)
    for ch in _foreign_forward_chains(ruleset or []):
        rules += _accepts(
            plan.addresses, plan.attachment.comment(FORWARD), ch["table"], ch["name"], ch["family"]
        )
    return rules


# ---------------------------------------------------------------------- the backend
def _rules(ruleset: list[Cmd]) -> Iterator[dict[str, Any]]:
    for obj in ruleset:
        if "rule" in obj and obj["rule"].get("family") in ("ip", "ip6", "inet"):
            yield obj["rule"]


def _delete(rule: dict[str, Any]) -> Cmd:
    return {"delete": {"rule": {k: rule[k] for k in ("family", "table", "chain", "handle")}}}


class NftablesBackend:
    name = "nftables"

    @contextmanager
    def _session(self) -> Iterator[Nft]:
        with locking.file_lock(LOCK_PATH), Nft() as nft:
            yield nft

    @staticmethod
    def _snapshot(nft: Nft, kind: str) -> list[Cmd]:
        """The part of the rule set ``kind`` can touch, in ``list ruleset`` object form.

        Our table (table, chains, rules), plus for the forward feature the foreign forward
        base chains with their rules (found through ``list chains``, which carries no rules).
        Objects outside this view hold no rule of ours for ``kind``.
        """
        out = nft.list_table(FAMILY, TABLES[kind]) or []
        if kind == FORWARD:
            for ch in nft.list_chains():
                if _is_foreign_forward(ch):
                    out += nft.list_chain(ch["family"], ch["table"], ch["name"]) or []
        return out

    def _run(self, nft: Nft, cmds: list[Cmd], what: str) -> None:
        try:
            nft.run(cmds)
        except NftError as exc:
            raise CNIError(Code.IO_FAILURE, f"nftables {what} failed", str(exc)) from None

    def add(self, plan: Plan) -> None:
        """Replace this attachment's rules of ``plan.kind`` with the plan's, atomically."""
        new = rules_for(plan)  # validates conditions before we touch the kernel
        with self._session() as nft:
            ruleset = self._snapshot(nft, plan.kind)
            if isinstance(plan, ForwardPlan):
                new = rules_for(plan, ruleset)
            stale = [r for r in _rules(ruleset) if plan.attachment.owns(r.get("comment"), plan.kind)]
            cmds = [_delete(r) for r in stale] + self._ensure(plan.kind, ruleset)
            for rule in new:
                # forward accepts go first in foreign chains, so a later drop cannot win
                verb = "insert" if rule["rule"]["table"] not in TABLES.values() else "add"
                cmds.append({verb: rule})
            self._run(nft, cmds, f"ADD ({plan.kind})")

    def _ensure(self, kind: str, ruleset: list[Cmd]) -> list[Cmd]:
        table = TABLES[kind]
        chains = {
            o["chain"]["name"]
            for o in ruleset
            if "chain" in o and o["chain"]["family"] == FAMILY and o["chain"]["table"] == table
        }
        cmds: list[Cmd] = [{"add": {"table": {"family": FAMILY, "name": table}}}]
        for chain, statics in _skeleton(kind):
            if chain["chain"]["name"] in chains:
                continue
            cmds.append({"add": chain})
            cmds += [{"add": _rule(chain["chain"]["name"], exprs, "", table)} for exprs in statics]
        for c in cmds:  # static rules carry no comment
            rule = c["add"].get("rule")
            if rule is not None and not rule["comment"]:
                del rule["comment"]
        return cmds

    def delete(self, attachment: Attachment, kind: str) -> None:
        with self._session() as nft:
            ruleset = self._snapshot(nft, kind)
            doomed = [r for r in _rules(ruleset) if attachment.owns(r.get("comment"), kind)]
            self._remove(nft, ruleset, doomed, kind, "DEL")

    def gc(self, network: Attachment, valid_tags: set[str], kind: str) -> None:
        """Delete ``kind`` rules of ``network.network`` whose attachment tag is not valid."""
        net_tag = network.tag.split("-")[0]
        with self._session() as nft:
            ruleset = self._snapshot(nft, kind)
            doomed = []
            for r in _rules(ruleset):
                parsed = parse_comment(r.get("comment"))
                if parsed and parsed[0] == net_tag and parsed[2] == kind and parsed[1] not in valid_tags:
                    doomed.append(r)
            self._remove(nft, ruleset, doomed, kind, "GC")

    def _remove(
        self, nft: Nft, ruleset: list[Cmd], doomed: list[dict[str, Any]], kind: str, what: str
    ) -> None:
        table = TABLES[kind]
        exists = any(
            "table" in o and o["table"]["family"] == FAMILY and o["table"]["name"] == table for o in ruleset
        )
        doomed_ids = {(r["family"], r["table"], r["chain"], r["handle"]) for r in doomed}
        left = [
            r
            for r in _rules(ruleset)
            if r["family"] == FAMILY
            and r["table"] == table
            and parse_comment(r.get("comment"))
            and (r["family"], r["table"], r["chain"], r["handle"]) not in doomed_ids
        ]
        cmds = [_delete(r) for r in doomed]
        if exists and not left:
            cmds = [_delete(r) for r in doomed if r["table"] != table or r["family"] != FAMILY]
            cmds.append({"delete": {"table": {"family": FAMILY, "name": table}}})
        if cmds:
            self._run(nft, cmds, f"{what} ({kind})")

    def check(self, plan: Plan) -> None:
        with self._session() as nft:
            ruleset = self._snapshot(nft, plan.kind)
        want: dict[tuple[str, str, str], int] = {}
        for rule in rules_for(plan, ruleset):
            r = rule["rule"]
            key = (r["family"], r["table"], r["chain"])
            want[key] = want.get(key, 0) + 1
        have: dict[tuple[str, str, str], int] = {}
        for r in _rules(ruleset):
            if plan.attachment.owns(r.get("comment"), plan.kind):
                key = (r["family"], r["table"], r["chain"])
                have[key] = have.get(key, 0) + 1
        for key, count in want.items():
            if have.get(key, 0) != count:
                raise CNIError(
                    Code.INVALID_ENVIRONMENT,
                    f"{plan.kind} rules missing",
                    f"nftables {key[0]} {key[1]} chain {key[2]}: expected {count} rules of "
                    f"{plan.attachment.tag}, found {have.get(key, 0)}",
                )

    def footprint(self, kind: str) -> bool:
        """Whether our table for ``kind`` exists here (detection stickiness).

        ``list tables`` returns names only, so this stays cheap however many pods run here.
        """
        with Nft() as nft:
            return any(t.get("family") == FAMILY and t.get("name") == TABLES[kind] for t in nft.list_tables())

    def may_hold(self, kind: str) -> bool:
        """Whether DEL/GC must look here: our table exists, or (forward) a foreign forward
        chain does -- accepts of ours inserted there must be found even if our table is gone.
        """
        if self.footprint(kind):
            return True
        if kind != FORWARD:
            return False
        with Nft() as nft:
            return any(_is_foreign_forward(ch) for ch in nft.list_chains())
