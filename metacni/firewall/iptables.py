"""The iptables backend: legacy x_tables through python-iptables (libiptc).

Chain names and layout follow the reference plugins so operators recognise them
(``CNI-HOSTPORT-DNAT``, ``CNI-DN-<hash>``, ``CNI-HOSTPORT-SETMARK``/``-MASQ``, ipMasq's
``CNI-<hash>``, the firewall plugin's ``CNI-FORWARD``). Unlike the reference, *every*
per-attachment rule -- inside the per-container chains and the jumps into them -- carries
the attachment comment, so DEL and GC find them by scanning, with no IPs or mappings.

libiptc works on a snapshot of a whole table and commits it with one replace, so each
table change is atomic; across tables (nat, filter) and families we build and validate
everything first, then commit. python-iptables caches one ``Table`` object per name
process-wide and libiptc handles bind to the netns they were opened in, so every session
re-opens the handle in the calling thread's netns under a lock, never autocommits, and
frees the handle afterwards. The lock is the xtables lock the iptables tools use.

IPv6 runs in a short-lived child process (spawned from the calling thread, so it shares
its netns). libxtables registers an extension's targets only for the family selected when
the extension is first loaded, and re-running the NAT extension's init for the other
family aborts the process ("target already registered"); so one process can use the NAT
targets of only one family. The child is spawned only when the IPv6 side has work: the
plan has IPv6 addresses, or chains of ours exist in the IPv6 tables.
"""

from __future__ import annotations

import logging
import multiprocessing
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import iptc

from metacni.spec.errors import CNIError, Code

from . import conditions, locking
from .identity import Attachment, dnat_chain, masq_chain, parse_comment, snat_chain
from .iptables_rules import comment_of, signature, target_of, to_rule
from .plan import FORWARD, MASQ, PORTMAP, ForwardPlan, MasqPlan, Plan, PortmapPlan
from .xtables import TABLE_OF, XTABLES_LOCK, tables_present

log = logging.getLogger(__name__)

TOP_DNAT, SETMARK, HP_MASQ, CNI_FORWARD = (
    "CNI-HOSTPORT-DNAT",
    "CNI-HOSTPORT-SETMARK",
    "CNI-HOSTPORT-MASQ",
    "CNI-FORWARD",
)
MULTIPORT_MAX = 15
MULTICAST = {4: "224.0.0.0/4", 6: "ff00::/8"}
_ATTACHMENT_CHAIN = re.compile(r"^CNI-(DN-[0-9a-f]{21}|SN-[0-9a-f]{21}|[0-9a-f]{24})$")


@dataclass
class Spec:
    table: str
    chain: str
    tokens: list[str]
    insert: bool = False


@dataclass
class Layout:
    """What one family of a plan needs: chains, shared rules (idempotent), owned rules."""

    chains: list[tuple[str, str]] = field(default_factory=list)
    shared: list[Spec] = field(default_factory=list)
    owned: list[Spec] = field(default_factory=list)


def _c(text: str) -> list[str]:
    return ["-m", "comment", "--comment", text]


def _port(proto: str, port: int) -> list[str]:
    return ["-p", proto, "-m", proto, "--dport", str(port)]


def portmap_layout(plan: PortmapPlan, version: int) -> Layout:
    cip = plan.ipv4 if version == 4 else plan.ipv6
    mappings = plan.mappings_for(version)
    out = Layout()
    if cip is None or not mappings:
        return out
    comment = plan.attachment.comment(PORTMAP)
    chain = dnat_chain(plan.attachment.network, plan.attachment.container_id)
    mark = f"{plan.mark:#x}/{plan.mark:#x}"
    out.chains += [("nat", TOP_DNAT), ("nat", chain)]
    for entry in ("PREROUTING", "OUTPUT"):
        out.shared.append(Spec("nat", entry, ["-m", "addrtype", "--dst-type", "LOCAL", "-j", TOP_DNAT]))
    setmark = plan.external_mark_chain or SETMARK
    if plan.snat and not plan.external_mark_chain:
        out.chains += [("nat", SETMARK), ("nat", HP_MASQ)]
        out.shared.append(
            Spec("nat", SETMARK, [*_c("CNI portfwd masquerade mark"), "-j", "MARK", "--set-xmark", mark])
        )
        out.shared.append(Spec("nat", HP_MASQ, ["-m", "mark", "--mark", mark, "-j", "MASQUERADE"]))
        out.shared.append(
            Spec("nat", "POSTROUTING", [*_c("CNI portfwd requiring masquerade"), "-j", HP_MASQ], insert=True)
        )
    any_src = "0.0.0.0/0" if version == 4 else "::/0"
    for m in mappings:
        match = _port(m.protocol, m.host_port) + ([] if m.any_host_ip else ["-d", str(m.host_ip)])
        if plan.snat:
            src = any_src if plan.masq_all else str(cip.network)
            out.owned.append(Spec("nat", chain, [*match, "-s", src, *_c(comment), "-j", setmark]))
            if version == 4 and not plan.masq_all:
                out.owned.append(Spec("nat", chain, [*match, "-s", "127.0.0.1", *_c(comment), "-j", setmark]))
        dest = f"{cip.ip}:{m.container_port}" if version == 4 else f"[{cip.ip}]:{m.container_port}"
        out.owned.append(Spec("nat", chain, [*match, *_c(comment), "-j", "DNAT", "--to-destination", dest]))
    conds = list(plan.conditions_v4 if version == 4 else plan.conditions_v6)
    for proto in sorted({m.protocol for m in mappings}):
        ports = list(dict.fromkeys(m.host_port for m in mappings if m.protocol == proto))
        for i in range(0, len(ports), MULTIPORT_MAX):
            chunk = ",".join(str(p) for p in ports[i : i + MULTIPORT_MAX])
            out.owned.append(
                Spec(
                    "nat",
                    TOP_DNAT,
                    [
                        "-p",
                        proto,
                        *_c(comment),
                        "-m",
                        "multiport",
                        "--destination-ports",
                        chunk,
                        *conds,
                        "-j",
                        chain,
                    ],
                )
            )
    return out


def masq_layout(plan: MasqPlan, version: int) -> Layout:
    ips = [ip for ip in plan.addresses if ip.version == version]
    out = Layout()
    if not ips:
        return out
    comment = plan.attachment.comment(MASQ)
    chain = masq_chain(plan.attachment.network, plan.attachment.container_id)
    out.chains.append(("nat", chain))
    exempt: list[str] = []
    for ip in ips:
        exempt += [str(n) for n in plan.exempt_for(ip) if str(n) not in exempt]
    out.owned += [Spec("nat", chain, ["-d", n, *_c(comment), "-j", "ACCEPT"]) for n in exempt]
    out.owned.append(Spec("nat", chain, ["!", "-d", MULTICAST[version], *_c(comment), "-j", "MASQUERADE"]))
    out.owned += [Spec("nat", "POSTROUTING", ["-s", str(ip.ip), *_c(comment), "-j", chain]) for ip in ips]
    return out


def forward_layout(plan: ForwardPlan, version: int) -> Layout:
    ips = [ip for ip in plan.addresses if ip.version == version]
    out = Layout()
    if not ips:
        return out
    comment = plan.attachment.comment(FORWARD)
    out.chains.append(("filter", CNI_FORWARD))
    out.shared.append(
        Spec("filter", "FORWARD", [*_c("CNI firewall plugin rules"), "-j", CNI_FORWARD], insert=True)
    )
    for ip in ips:
        out.owned.append(Spec("filter", CNI_FORWARD, ["-s", str(ip.ip), *_c(comment), "-j", "ACCEPT"]))
        out.owned.append(Spec("filter", CNI_FORWARD, ["-d", str(ip.ip), *_c(comment), "-j", "ACCEPT"]))
    return out


def layout_for(plan: Plan, version: int) -> Layout:
    if isinstance(plan, PortmapPlan):
        return portmap_layout(plan, version)
    if isinstance(plan, MasqPlan):
        return masq_layout(plan, version)
    return forward_layout(plan, version)


class _Session:
    """Lazily opened libiptc handles of one family, committed together."""

    def __init__(self, version: int) -> None:
        self.version = version
        self.tables: dict[str, Any] = {}
        self.dirty: set[str] = set()

    def table(self, name: str) -> Any:
        if name not in self.tables:
            cls = iptc.Table if self.version == 4 else iptc.Table6
            table = cls(name, autocommit=False)
            table.refresh()  # a fresh handle in this thread's netns
            self.tables[name] = table
        return self.tables[name]

    def has_chain(self, table: str, name: str) -> bool:
        return bool(self.table(table).is_chain(name))

    def commit(self) -> None:
        for name in ("nat", "filter"):
            if name in self.dirty:
                self.tables[name].commit()

    def close(self) -> None:
        for table in self.tables.values():
            table.close()
        self.tables.clear()


@contextmanager
def _family(version: int) -> Iterator[_Session]:
    session = _Session(version)
    try:
        yield session
    finally:
        session.close()


def _v6_has_ours(table: str) -> bool:
    """Chains of ours in the IPv6 table, by name only (names need no extension decoding)."""
    if table not in tables_present(6):
        return False
    with _family(6) as s:
        names = [c.name for c in s.table(table).chains]
    return any(_ATTACHMENT_CHAIN.fullmatch(n) or n in (TOP_DNAT, SETMARK, HP_MASQ, CNI_FORWARD) for n in names)


#: the only non-attachment chains our attachment-comment rules are put in (see the layouts)
_OWNED_RULE_CHAINS = frozenset({TOP_DNAT, CNI_FORWARD, "POSTROUTING"})


def _scanned(chain: str, att: Attachment | None) -> bool:
    """Whether ``chain`` can hold attachment-comment rules (of ``att`` when given).

    Per-attachment rules live only in the layouts' chains: the per-container chains, the
    top DNAT chain, ``CNI-FORWARD`` and ``POSTROUTING``. With an attachment, only its own
    per-container chains qualify (their names derive from network and container id).
    """
    if chain in _OWNED_RULE_CHAINS:
        return True
    if att is not None:
        return chain in (
            dnat_chain(att.network, att.container_id),
            snat_chain(att.network, att.container_id),
            masq_chain(att.network, att.container_id),
        )
    return bool(_ATTACHMENT_CHAIN.fullmatch(chain))


def _child(method: str, args: tuple[Any, ...]) -> tuple[Any, ...]:
    try:
        getattr(IptablesBackend(), method)(*args)
    except CNIError as exc:
        return ("err", exc.code, exc.msg, exc.details)
    except Exception as exc:
        return ("err", int(Code.IO_FAILURE), "ip6tables change failed", f"{type(exc).__name__}: {exc}")
    return ("ok",)


def _in_child(method: str, *args: Any) -> None:
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(1) as pool:
        out = pool.apply(_child, (method, args))
    if out[0] == "err":
        raise CNIError(out[1], out[2], out[3])


class IptablesBackend:
    name = "iptables"

    def _families(self, method: str, needs_v6: bool, *args: Any) -> None:
        """Run ``method(version, *args)`` for IPv4 here and, when needed, IPv6 in a child."""
        getattr(self, method)(4, *args)
        if needs_v6:
            _in_child(method, 6, *args)

    # ------------------------------------------------------------------ ADD
    def add(self, plan: Plan) -> None:
        if isinstance(plan, PortmapPlan):
            for toks, f in ((plan.conditions_v4, "conditionsV4"), (plan.conditions_v6, "conditionsV6")):
                if toks and conditions.syntax(toks) != "iptables":
                    raise CNIError(
                        Code.INVALID_CONFIG, f"invalid {f}", f"{f}: nft syntax with the iptables backend"
                    )
        layout_for(plan, 4)  # build both families' specs first: errors before any change
        v6 = layout_for(plan, 6)
        with locking.file_lock(XTABLES_LOCK):
            # libxtables parses matches in process-global state: the daemon's threads must not
            # build rules concurrently, not even for the dry run.
            self._add_family(4, plan, dry_run=True)
            self._families("_add_family", bool(v6.owned) or _v6_has_ours(TABLE_OF[plan.kind]), plan)

    def _add_family(self, v: int, plan: Plan, dry_run: bool = False) -> None:
        lay = layout_for(plan, v)
        where = "conditionsV4" if v == 4 else "conditionsV6"
        built = [
            (s, to_rule(s.tokens, v, where if s.chain == TOP_DNAT else "rule"))
            for s in lay.shared + lay.owned
        ]
        if dry_run:
            return
        with _family(v) as s:
            present = tables_present(v)
            removed = self._remove_owned(
                s,
                lambda c: plan.attachment.owns(c, plan.kind),
                present | {sp.table for sp in lay.owned},
                plan.attachment,
            )
            if lay.owned:
                self._install(s, lay, built)
            else:
                self._cleanup(s, plan.kind, removed, plan.attachment)
            s.commit()

    def _install(self, s: _Session, lay: Layout, built: list[tuple[Spec, Any]]) -> None:
        for table, chain in lay.chains:
            if not s.has_chain(table, chain):
                s.table(table).create_chain(chain)
                s.dirty.add(table)
        shared_ids = {id(sp) for sp in lay.shared}
        for spec, rule in built:
            ch = iptc.Chain(s.table(spec.table), spec.chain)
            if id(spec) in shared_ids:
                sig = signature(rule)
                if any(signature(r) == sig for r in ch.rules):
                    continue
            if spec.insert:
                ch.insert_rule(rule)
            else:
                ch.append_rule(rule)
            s.dirty.add(spec.table)

    # ------------------------------------------------------------------ DEL / GC
    def _remove_owned(
        self, s: _Session, owned: Any, tables: set[str], att: Attachment | None = None
    ) -> set[str]:
        """Delete every rule whose comment ``owned`` accepts; return the chains they jumped to.

        Only chains that can hold such rules are decoded (:func:`_scanned`): decoding every
        rule of every chain (kube-proxy's thousands included) was most of a DEL's cost.
        """
        targets: set[str] = set()
        for name in ("nat", "filter"):
            if name not in tables:
                continue
            table = s.table(name)
            for chain in table.chains:
                if not _scanned(chain.name, att):
                    continue
                for rule in reversed(chain.rules):
                    if owned(comment_of(rule)):
                        targets.add(target_of(rule))
                        chain.delete_rule(rule)
                        s.dirty.add(name)
        return targets

    def _drop_chain_if_empty(self, s: _Session, table: str, name: str) -> bool:
        if not s.has_chain(table, name):
            return False
        t = s.table(table)
        if iptc.Chain(t, name).rules:
            return False
        for chain in t.chains:
            for rule in reversed(chain.rules):
                if target_of(rule) == name:
                    chain.delete_rule(rule)
        t.delete_chain(name)
        s.dirty.add(table)
        return True

    def _cleanup(self, s: _Session, kind: str, targets: set[str], att: Attachment | None) -> None:
        present = tables_present(s.version)
        table = TABLE_OF[kind]
        if table not in present:
            return
        candidates = {t for t in targets if _ATTACHMENT_CHAIN.fullmatch(t)}
        if att is not None:
            if kind == PORTMAP:
                candidates |= {
                    dnat_chain(att.network, att.container_id),
                    snat_chain(att.network, att.container_id),
                }
            elif kind == MASQ:
                candidates.add(masq_chain(att.network, att.container_id))
        for name in sorted(candidates):
            self._drop_chain_if_empty(s, table, name)
        if not targets and not (s.dirty & {table}):
            return  # we removed nothing: leave shared chains to whoever uses them
        t = s.table(table)
        if kind == PORTMAP:
            if any(c.name.startswith("CNI-DN-") for c in t.chains):
                return
            if self._drop_chain_if_empty(s, "nat", TOP_DNAT):
                for name in (HP_MASQ, SETMARK):
                    if s.has_chain("nat", name):
                        t.flush_entries(name)
                        self._drop_chain_if_empty(s, "nat", name)
        elif kind == FORWARD:
            self._drop_chain_if_empty(s, "filter", CNI_FORWARD)

    def delete(self, attachment: Attachment, kind: str) -> None:
        with locking.file_lock(XTABLES_LOCK):
            self._families("_delete_family", _v6_has_ours(TABLE_OF[kind]), attachment, kind)

    def _delete_family(self, v: int, attachment: Attachment, kind: str) -> None:
        present = tables_present(v)
        if TABLE_OF[kind] not in present:
            return
        with _family(v) as s:
            removed = self._remove_owned(s, lambda c: attachment.owns(c, kind), present, attachment)
            self._cleanup(s, kind, removed, attachment)
            s.commit()

    def gc(self, network: Attachment, valid_tags: set[str], kind: str) -> None:
        with locking.file_lock(XTABLES_LOCK):
            self._families("_gc_family", _v6_has_ours(TABLE_OF[kind]), network, valid_tags, kind)

    def _gc_family(self, v: int, network: Attachment, valid_tags: set[str], kind: str) -> None:
        net_tag = network.tag.split("-")[0]

        def stale(comment: str | None) -> bool:
            parsed = parse_comment(comment)
            return (
                parsed is not None
                and parsed[0] == net_tag
                and parsed[2] == kind
                and parsed[1] not in valid_tags
            )

        present = tables_present(v)
        if TABLE_OF[kind] not in present:
            return
        with _family(v) as s:
            removed = self._remove_owned(s, stale, present)
            self._cleanup(s, kind, removed, None)
            s.commit()

    # ------------------------------------------------------------------ CHECK
    def check(self, plan: Plan) -> None:
        with locking.file_lock(XTABLES_LOCK):
            self._families("_check_family", bool(layout_for(plan, 6).owned), plan)

    def _check_family(self, v: int, plan: Plan) -> None:
        lay = layout_for(plan, v)
        if not lay.owned:
            return
        if TABLE_OF[plan.kind] not in tables_present(v):
            raise self._missing(plan, v, f"table {TABLE_OF[plan.kind]} does not exist")
        with _family(v) as s:
            for table, chain in lay.chains:
                if not s.has_chain(table, chain):
                    raise self._missing(plan, v, f"chain {chain} does not exist")
            for spec in lay.shared + lay.owned:
                want = signature(to_rule(spec.tokens, v))
                have = {signature(r) for r in iptc.Chain(s.table(spec.table), spec.chain).rules}
                if want not in have:
                    raise self._missing(plan, v, f"rule {' '.join(spec.tokens)!r} missing in {spec.chain}")

    @staticmethod
    def _missing(plan: Plan, version: int, what: str) -> CNIError:
        return CNIError(
            Code.INVALID_ENVIRONMENT,
            f"{plan.kind} rules missing",
            f"iptables (IPv{version}) for {plan.attachment.tag}: {what}",
        )

    def footprint(self, kind: str) -> bool:
        """Whether our chains exist here (used for backend stickiness); never creates a table."""
        return self._ours(kind, strict=True)

    def may_hold(self, kind: str) -> bool:
        """Whether DEL/GC must look here: any chain of ours for ``kind`` exists (names only).

        Wider than :meth:`footprint`: a leftover per-attachment chain without the shared
        top chain (an interrupted cleanup) still sends the DEL here.
        """
        return self._ours(kind, strict=False)

    def _ours(self, kind: str, strict: bool) -> bool:
        table = TABLE_OF[kind]
        if table not in tables_present(4) and table not in tables_present(6):
            return False  # no x_tables of that name: nothing of ours, and no lock needed
        with locking.file_lock(XTABLES_LOCK):
            if _v6_has_ours(table):
                return True
            for v in (4,):
                if table not in tables_present(v):
                    continue
                with _family(v) as s:
                    names = [c.name for c in s.table(table).chains]
                if kind == PORTMAP and TOP_DNAT in names or kind == FORWARD and CNI_FORWARD in names:
                    return True
                if kind == MASQ and any(
                    _ATTACHMENT_CHAIN.fullmatch(n) and not n.startswith(("CNI-DN-", "CNI-SN-")) for n in names
                ):
                    return True
                if not strict and kind == PORTMAP and any(
                    n.startswith(("CNI-DN-", "CNI-SN-")) and _ATTACHMENT_CHAIN.fullmatch(n) for n in names
                ):
                    return True
        return False
