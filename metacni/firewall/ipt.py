"""The iptables engine: legacy x_tables through python-iptables (libiptc), for every feature.

The features (:mod:`.portmap`, :mod:`.masq`, :mod:`.forward`) describe their layouts as
token lists (:class:`.xtables.Layout`); chain names follow the reference plugins so
operators recognise them. Unlike the reference, *every* per-attachment rule -- inside the
per-container chains and the jumps into them -- carries the attachment comment, so DEL and
GC find them by scanning, with no IPs or mappings.

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
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import iptc

from metacni.spec.errors import CNIError, Code

from . import feature, locking
from .identity import Attachment, is_attachment_chain, parse_comment
from .iptables_rules import comment_of, signature, target_of, to_rule
from .plan import Plan
from .xtables import XTABLES_LOCK, Layout, Spec, tables_present

if TYPE_CHECKING:
    pass

log = logging.getLogger(__name__)


class Session:
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

    def drop_chain_if_empty(self, table: str, name: str) -> bool:
        """Delete chain ``name`` and the jumps to it when it has no rules; True if deleted."""
        if not self.has_chain(table, name):
            return False
        t = self.table(table)
        if iptc.Chain(t, name).rules:
            return False
        for chain in t.chains:
            for rule in reversed(chain.rules):
                if target_of(rule) == name:
                    chain.delete_rule(rule)
        t.delete_chain(name)
        self.dirty.add(table)
        return True

    def commit(self) -> None:
        for name in ("nat", "filter"):
            if name in self.dirty:
                self.tables[name].commit()

    def close(self) -> None:
        for table in self.tables.values():
            table.close()
        self.tables.clear()


@contextmanager
def _family(version: int) -> Iterator[Session]:
    session = Session(version)
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
    shared = {name for f in map(feature.of, feature.KINDS) for name in f.ipt_shared}
    return any(is_attachment_chain(n) or n in shared for n in names)


def _scanned(att: Attachment | None) -> Callable[[str], bool]:
    """Whether a chain can hold attachment-comment rules (of ``att`` when given).

    Per-attachment rules live only in the layouts' chains: the per-container chains and the
    features' :attr:`~.protocol.Feature.ipt_rule_chains` (the top DNAT chain, ``CNI-FORWARD``,
    ``POSTROUTING``). With an attachment, only its own per-container chains qualify (their
    names derive from network and container id). The names are worked out once per scan:
    a node's tables hold thousands of kube-proxy chains.
    """
    features = [feature.of(kind) for kind in feature.KINDS]
    shared = {name for f in features for name in f.ipt_rule_chains}
    if att is None:
        return lambda chain: chain in shared or is_attachment_chain(chain)
    own = shared.union(*(f.ipt_chains(att) for f in features))
    return own.__contains__


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
        feat = feature.of(plan.kind)
        feat.ipt_validate(plan)
        feat.ipt_layout(plan, 4)  # build both families' specs first: errors before any change
        v6 = feat.ipt_layout(plan, 6)
        with locking.file_lock(XTABLES_LOCK):
            # libxtables parses matches in process-global state: the daemon's threads must not
            # build rules concurrently, not even for the dry run.
            self._add_family(4, plan, dry_run=True)
            self._families("_add_family", bool(v6.owned) or _v6_has_ours(feat.ipt_table), plan)

    def _add_family(self, v: int, plan: Plan, dry_run: bool = False) -> None:
        lay = feature.of(plan.kind).ipt_layout(plan, v)
        built = [(s, to_rule(s.tokens, v, s.source)) for s in lay.shared + lay.owned]
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

    def _install(self, s: Session, lay: Layout, built: list[tuple[Spec, Any]]) -> None:
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
        self, s: Session, owned: Callable[[str | None], bool], tables: set[str], att: Attachment | None = None
    ) -> set[str]:
        """Delete every rule whose comment ``owned`` accepts; return the chains they jumped to.

        Only chains that can hold such rules are decoded (:func:`_scanned`): decoding every
        rule of every chain (kube-proxy's thousands included) was most of a DEL's cost.
        """
        targets: set[str] = set()
        scanned = _scanned(att)
        for name in ("nat", "filter"):
            if name not in tables:
                continue
            table = s.table(name)
            for chain in table.chains:
                if not scanned(chain.name):
                    continue
                for rule in reversed(chain.rules):
                    if owned(comment_of(rule)):
                        targets.add(target_of(rule))
                        chain.delete_rule(rule)
                        s.dirty.add(name)
        return targets

    def _cleanup(self, s: Session, kind: str, targets: set[str], att: Attachment | None) -> None:
        """Drop emptied per-attachment chains, then the feature's shared ones if unused."""
        feat = feature.of(kind)
        if feat.ipt_table not in tables_present(s.version):
            return
        candidates = {t for t in targets if is_attachment_chain(t)}
        if att is not None:
            candidates |= feat.ipt_chains(att)
        for name in sorted(candidates):
            s.drop_chain_if_empty(feat.ipt_table, name)
        if not targets and not (s.dirty & {feat.ipt_table}):
            return  # we removed nothing: leave shared chains to whoever uses them
        feat.ipt_drop_shared(s)

    def delete(self, attachment: Attachment, kind: str) -> None:
        with locking.file_lock(XTABLES_LOCK):
            self._families("_delete_family", _v6_has_ours(feature.of(kind).ipt_table), attachment, kind)

    def _delete_family(self, v: int, attachment: Attachment, kind: str) -> None:
        present = tables_present(v)
        if feature.of(kind).ipt_table not in present:
            return
        with _family(v) as s:
            removed = self._remove_owned(s, lambda c: attachment.owns(c, kind), present, attachment)
            self._cleanup(s, kind, removed, attachment)
            s.commit()

    def gc(self, network: Attachment, valid_tags: set[str], kind: str) -> None:
        with locking.file_lock(XTABLES_LOCK):
            self._families("_gc_family", _v6_has_ours(feature.of(kind).ipt_table), network, valid_tags, kind)

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
        if feature.of(kind).ipt_table not in present:
            return
        with _family(v) as s:
            removed = self._remove_owned(s, stale, present)
            self._cleanup(s, kind, removed, None)
            s.commit()

    # ------------------------------------------------------------------ CHECK
    def check(self, plan: Plan) -> None:
        with locking.file_lock(XTABLES_LOCK):
            self._families("_check_family", bool(feature.of(plan.kind).ipt_layout(plan, 6).owned), plan)

    def _check_family(self, v: int, plan: Plan) -> None:
        lay = feature.of(plan.kind).ipt_layout(plan, v)
        if not lay.owned:
            return
        if feature.of(plan.kind).ipt_table not in tables_present(v):
            raise self._missing(plan, v, f"table {feature.of(plan.kind).ipt_table} does not exist")
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
        feat = feature.of(kind)
        table = feat.ipt_table
        if table not in tables_present(4) and table not in tables_present(6):
            return False  # no x_tables of that name: nothing of ours, and no lock needed
        with locking.file_lock(XTABLES_LOCK):
            if _v6_has_ours(table):
                return True
            if table not in tables_present(4):
                return False
            with _family(4) as s:
                names = [c.name for c in s.table(table).chains]
            return feat.ipt_ours(names, strict)
