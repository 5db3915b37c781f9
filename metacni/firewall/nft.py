"""The nftables engine: tables of our own, per-attachment chains reached through maps.

Why this layout: ADD and DEL must cost the same with 1 or 1000 pods on the node. Earlier
every ADD/DEL listed and JSON-parsed our whole table to find the attachment's rules by
comment, a cost that grew with the pods (figures: bench/README.md). Here an attachment owns chains named after
its identity, so ADD writes without reading and DEL reads only its own small chains.

Layout (family ``inet``; one table per feature; ``<tag>`` is the attachment tag): each
feature (:mod:`.portmap`, :mod:`.masq`, :mod:`.forward`, a :class:`.protocol.Feature`)
describes its base chains, its verdict maps and the attachment's rules; their elements jump
to per-attachment chains (``<role>-<tag>``). A drop verdict in any other base chain is final
in nftables, so a feature with ``nft_foreign`` (forward) also gets its accepts inserted at
the top of foreign forward base chains that drop (iptables-nft's ``filter FORWARD`` with
policy DROP, for instance); they carry the attachment comment and go away with it.

Every per-attachment rule carries the attachment comment (:mod:`.identity`). Each
per-attachment chain ends with ``goto attachments``: the empty ``attachments`` chain returns
at once, so the rule changes nothing for packets, but the kernel refuses to delete a chain
still referenced (EBUSY). ``delete chain attachments; delete table`` is therefore one atomic
batch that succeeds exactly when no attachment is left: DEL runs it after its own removal,
and the node returns byte for byte to the rule set it had, without anyone listing the table.

Verbs (one libnftables context per netns is reused, :func:`.libnft.pooled`):

* ADD: the attachment's own objects are one raw nf_tables batch built from memory
  (:mod:`metacni.netlink.nftables` encodes the rules as libnftables would: no JSON, no evaluation, no
  cache fill). The infrastructure (table, maps, static chains, flushed and refilled, so
  the batch is idempotent) is a libnftables batch before it, the first time per netns and
  process and again after any failure, unless its version marker (an empty chain named
  after a digest of it, :func:`skeleton_marker`) is found: then it is this version's and
  stays as it is. ``add chain X; delete chain X`` first removes an
  earlier ADD's chain; it fails if that ADD's map elements still point there (a re-ADD),
  and so does ``add element`` when another attachment holds a key (a stale attachment
  whose DEL never came). Then the slow path reads the table under the file lock, removes
  the earlier elements, evicts the stale key holder wholesale, and applies everything in
  one libnftables batch. What the raw encoder does not cover (portmap conditions given as
  nft syntax; forward accepts to insert in foreign chains) keeps the single libnftables
  batch (infrastructure included when due) in place of the raw one, with the same
  fallback.
* DEL: an attachment this process added (remembered per netns with the pooled context) is
  removed by one raw nf_tables batch built from memory (no libnftables cache fill). Else,
  or if the kernel refuses that batch, DEL lists only the attachment's own chains
  (constant size), derives the map keys from their rules, and deletes elements and chains
  in one batch. Then the anchor's use count (one GETCHAIN) says whether to run the guard.
* GC and CHECK list the table (they are periodic or rare).

Locking: ADD, DEL and GC take no file lock: each batch is atomic, and removals are written
so that objects a concurrent DEL or GC removed first do not fail them (``add`` then
``delete``); a DEL whose batch still meets a change reads again. Only the slow ADD (which
may evict another attachment) keeps the host-wide ``/run/metacni-nftables.lock`` older
versions take for every batch: rare, and it serialises two evictions.

Why raw nf_tables batches for the per-attachment objects (libnftables' cache fill grows with
the pods): docs/design/1701-own-netlink-codec.md.

Above 400 lines on purpose: :class:`NftablesBackend` is one transaction engine; ADD, DEL, CHECK
and GC share its batch building and skeleton cache.
"""

from __future__ import annotations

import functools
import ipaddress
import json
import time
from collections.abc import Iterable, Iterator
from logging import getLogger
from pathlib import Path
from typing import TYPE_CHECKING

from metacni.netlink import nftables as nftnl
from metacni.spec.digest import sha256_hex
from metacni.spec.errors import CNIError, Code

from . import feature, libnft
from .identity import Attachment, parse_comment
from .libnft import Nft, NftError
from .locking import file_lock
from .nftrules import ANCHOR, FAMILY, rule
from .nftrules import chain as _chain
from .plan import Plan

if TYPE_CHECKING:
    from typing import Any

    from .nftrules import Cmd, Elem, Key, Wanted

log = getLogger(__name__)

#: serialises the read-modify-write paths (slow ADD, GC) across processes
LOCK_PATH = Path("/run/metacni-nftables.lock")
#: how long a netns's list of foreign forward chains is trusted (a ``list chains`` grows with
#: the pods: too much for every ADD)
FOREIGN_TTL = 10.0
#: ADD writes its per-attachment objects as one raw nf_tables batch (:mod:`metacni.netlink.nftables`) when
#: every rule is encodable there; False: always through libnftables (tests compare both)
RAW_ADD = True


# ---------------------------------------------------------------------- infrastructure
def table(kind: str) -> str:
    """The feature's table name."""
    return feature.of(kind).nft_table


def _shared(kind: str) -> list[Cmd]:
    """Create-or-reset the table's shared objects; idempotent, leaves attachments alone."""
    feat = feature.of(kind)
    t = feat.nft_table
    cmds: list[Cmd] = [{"add": {"table": {"family": FAMILY, "name": t}}}]
    for name, typ in feat.nft_maps():
        cmds.append({"add": {"map": {"family": FAMILY, "table": t, "name": name, "type": typ, "map": "verdict"}}})
    cmds.append({"add": _chain(t, ANCHOR)})
    for chain, statics in feat.nft_skeleton():
        cmds += [{"add": chain}, {"flush": chain}]
        name = chain["chain"]["name"]
        cmds += [{"add": {"rule": {"family": FAMILY, "table": t, "chain": name, "expr": e}}} for e in statics]
    return cmds


def _ensure(kind: str) -> list[Cmd]:
    """The shared objects and the marker saying they are this version's."""
    return [*_shared(kind), {"add": _chain(table(kind), skeleton_marker(kind))}]


@functools.cache
def skeleton_marker(kind: str) -> str:
    """An empty chain named after a digest of the table's shared objects, made with them.

    Finding it (one GETCHAIN) tells a fresh process that this version's shared
    objects are in place, so its first ADD skips the libnftables batch that would reset
    them (a cache fill that grows with the pods). A version with other shared objects has another digest, finds
    no marker and resets them; if anything else is missing the raw batch fails and the slow
    path resets them."""
    return "skeleton-" + sha256_hex(json.dumps(_shared(kind), sort_keys=True))[:12]


# ---------------------------------------------------------------------- per-attachment objects
def role_chains(kind: str, att: Attachment) -> list[str]:
    return [prefix + att.tag for prefix in feature.of(kind).nft_roles]


def wanted(plan: Plan) -> Wanted:
    """The plan's chains and elements (validates nft conditions: raises before any change)."""
    return feature.of(plan.kind).nft_wanted(plan)


def _foreign_rules(plan: Plan, chains: Iterable[tuple[str, str, str]]) -> list[Cmd]:
    """The feature's accepts for foreign forward base chains ((family, table, name) each)."""
    feat, comment = feature.of(plan.kind), plan.attachment.comment(plan.kind)
    if not feat.nft_foreign:
        return []
    return [rule(name, exprs, comment, tbl, family) for family, tbl, name in chains
            for exprs in feat.nft_accepts(plan, family)]


def _create(plan: Plan, want: Wanted, foreign: list[Cmd]) -> list[Cmd]:
    t, comment = table(plan.kind), plan.attachment.comment(plan.kind)
    cmds: list[Cmd] = []
    for chain, rules in want.chains.items():
        cmds.append({"add": _chain(t, chain)})
        cmds += [{"add": rule(chain, exprs, comment, t)} for exprs in rules]
        cmds.append({"add": rule(chain, _GOTO_ANCHOR, comment, t)})
    cmds += [{"add": _element(t, m, key, chain)} for m, key, chain in want.elems]
    # forward accepts go first in foreign chains, so a later drop cannot win
    cmds += [{"insert": rule} for rule in foreign]
    return cmds


def _raw_fast(plan: Plan, want: Wanted) -> list[nftnl.Request] | None:
    """The fast ADD's per-attachment part (what ``_create`` makes, after ``add chain X;
    delete chain X`` of the role chains) as raw messages, or None when a rule is one
    :mod:`metacni.netlink.nftables` does not encode (user-given conditions): then libnftables does it."""
    if not feature.of(plan.kind).nft_raw(plan):
        return None
    t, comment = table(plan.kind), plan.attachment.comment(plan.kind)
    msgs: list[nftnl.Request] = []
    for chain in role_chains(plan.kind, plan.attachment):
        msgs += [nftnl.chain("add", FAMILY, t, chain), nftnl.chain("delete", FAMILY, t, chain)]
    try:
        for chain, rules in want.chains.items():
            msgs.append(nftnl.chain("add", FAMILY, t, chain))
            msgs += [nftnl.rule(FAMILY, t, chain, exprs, comment) for exprs in [*rules, _GOTO_ANCHOR]]
    except nftnl.Unsupported as exc:
        log.debug("nftables ADD (%s) of %s through libnftables: %s", plan.kind, plan.attachment.tag, exc)
        return None
    msgs += [nftnl.element("add", FAMILY, t, m, _key_bytes(m, key), chain) for m, key, chain in want.elems]
    return msgs


_GOTO_ANCHOR: list[Cmd] = [{"goto": {"target": ANCHOR}}]


def _element(table: str, name: str, key: Key, chain: str | None = None) -> Cmd:
    item: Any = [key, {"jump": {"target": chain}}] if chain is not None else key
    return {"element": {"family": FAMILY, "table": table, "name": name, "elem": [item]}}


def _keys(kind: str, chain: str, rules: Iterable[dict[str, Any]]) -> list[Elem]:
    """The map elements that lead to ``chain``, read back from its rules (see the features)."""
    feat = feature.of(kind)
    out: list[Elem] = []
    for r in rules:
        expr = r.get("expr") or []
        if len(expr) < 2 or "match" not in expr[0]:
            continue  # the anchor goto
        elem = feat.nft_key(chain, expr)
        if elem is not None and (elem[0], elem[1], chain) not in out:
            out.append((elem[0], elem[1], chain))
    return out


def _is_foreign_forward(ch: dict[str, Any]) -> bool:
    """Another table's forward base chain that would drop pod traffic regardless of ours."""
    if ch.get("hook") != "forward" or ch.get("family") not in ("ip", "ip6", "inet"):
        return False
    if ch.get("family") == FAMILY and ch.get("table") in feature.nft_tables():
        return False
    return ch.get("policy") == "drop" or (ch.get("table") == "filter" and ch.get("name") == "FORWARD")


def _objects(objs: Iterable[Cmd], kind: str) -> Iterator[dict[str, Any]]:
    for obj in objs:
        if kind in obj:
            yield obj[kind]


def _delete_rule(rule: dict[str, Any]) -> Cmd:
    return {"delete": {"rule": {k: rule[k] for k in ("family", "table", "chain", "handle")}}}


def _drop(table: str, chains: Iterable[str], elems: Iterable[Elem]) -> list[Cmd]:
    """Delete chains and the map elements leading to them, tolerating any of them being gone
    already (a concurrent DEL or GC): ``add`` first, then ``delete``, in one batch."""
    chains = sorted(set(chains))
    cmds = [{"add": _chain(table, c)} for c in chains]
    for m, key, target in elems:
        cmds += _drop_elem(table, m, key, target)
    return cmds + [{"delete": _chain(table, c)} for c in chains]


def _drop_elem(table: str, m: str, key: Key, chain: str) -> list[Cmd]:
    """Delete an element that may be gone already (``add`` first makes the batch idempotent)."""
    return [{"add": _element(table, m, key, chain)}, {"delete": _element(table, m, key)}]


def _guard(kind: str) -> list[Cmd]:
    """Deletes the table only if no per-attachment chain references ``attachments``."""
    t = table(kind)
    return [{"delete": _chain(t, ANCHOR)}, {"delete": {"table": {"family": FAMILY, "name": t}}}]


class NftablesBackend:
    name = "nftables"

    @staticmethod
    def _run(nft: Nft, cmds: list[Cmd], what: str) -> None:
        try:
            nft.run(cmds)
        except NftError as exc:
            raise CNIError(Code.IO_FAILURE, f"nftables {what} failed", str(exc)) from None

    # ------------------------------------------------------------------ shared helpers
    @staticmethod
    def _foreign(entry: libnft.PoolEntry, fresh: bool = False) -> list[tuple[str, str, str]]:
        """Foreign forward base chains of this netns, remembered for :data:`FOREIGN_TTL`."""
        hit = entry.state.foreign
        now = time.monotonic()
        if hit is None or fresh or now - hit[0] > FOREIGN_TTL:
            chains = [(c["family"], c["table"], c["name"]) for c in entry.nft.list_chains() if _is_foreign_forward(c)]
            hit = entry.state.foreign = (now, chains)
        return list(hit[1])

    @staticmethod
    def _foreign_rules_of(nft: Nft, chains: Iterable[tuple[str, str, str]]) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for family, tbl, name in chains:
            out += _objects(nft.list_chain(family, tbl, name) or [], "rule")
        return out

    @staticmethod
    def _owned(entry: libnft.PoolEntry) -> dict[tuple[str, str], tuple[list[str], list[Elem]]]:
        """(kind, tag) -> (chains, map elements) of the attachments this process added in
        the entry's netns: DEL deletes them without reading (the batch is checked by the
        kernel; on any refusal DEL reads the chains as a fresh process would)."""
        return entry.state.owned

    @staticmethod
    def _tables(entry: libnft.PoolEntry) -> set[str]:
        """Kinds whose table this process ensured in the entry's netns."""
        return entry.state.tables

    def _try_guard(self, entry: libnft.PoolEntry, kind: str) -> None:
        """Delete the table if no attachment is left; close the netns's context with the
        last table of ours we know there (unpins the netns; the next ADD makes a new one),
        except in the process's home netns (:func:`.libnft.set_home`), which it never needs to
        unpin: the daemon keeps its context and its backend decisions there, so the node's next
        pod after its last one neither detects again nor waits for the context's close (tens of
        ms in the kernel).

        The anchor's use count says whether any attachment is left: a guard batch the kernel
        refuses is far dearer (the transaction abort waits for an RCU grace period).
        """
        tables = self._tables(entry)
        try:
            use = nftnl.chain_use(entry.netlink, FAMILY, table(kind), ANCHOR)
        except (OSError, NftError):
            log.debug("use count of %s %s unknown", table(kind), ANCHOR, exc_info=True)
            use = -1  # unknown: the guard batch decides
        if use is not None:
            if use > 0:
                tables.add(kind)
                return
            try:  # still checked by the kernel: an ADD may have come in since the count
                entry.nft.run(_guard(kind))
            except NftError:  # attachments left (EBUSY): the table stays, keep the context
                tables.add(kind)
                return
        tables.discard(kind)  # deleted, or (use None) no table with an anchor here
        if not tables and not libnft.at_home():
            libnft.release(entry)

    # ------------------------------------------------------------------ ADD
    def add(self, plan: Plan) -> None:
        """Replace this attachment's rules of ``plan.kind`` with the plan's, atomically."""
        want = wanted(plan)  # validates conditions before we touch the kernel
        kind, t = plan.kind, table(plan.kind)
        with libnft.pooled() as entry:
            foreign = self._foreign(entry) if feature.of(kind).nft_foreign else []
            raw = _raw_fast(plan, want) if RAW_ADD and not foreign else None
            if raw is not None and kind not in self._tables(entry) and self._has_marker(entry, kind):
                self._tables(entry).add(kind)  # this version's shared objects are there already
            fast: list[Cmd] = [] if kind in self._tables(entry) else _ensure(kind)
            try:
                if raw is not None:
                    if fast:  # the infrastructure: libnftables, its own (idempotent) batch
                        entry.nft.run(fast)
                    nftnl.transaction(entry.netlink, raw)
                else:
                    for chain in role_chains(kind, plan.attachment):
                        fast += [{"add": _chain(t, chain)}, {"delete": _chain(t, chain)}]
                    fast += _create(plan, want, _foreign_rules(plan, foreign))
                    entry.nft.run(fast)
            except (NftError, OSError) as exc:
                log.debug("nftables fast ADD (%s) of %s refused (%s); reading the table", kind,
                          plan.attachment.tag, exc)
                self._tables(entry).discard(kind)
                with file_lock(LOCK_PATH):
                    self._slow_add(entry, plan, want)
            self._tables(entry).add(kind)
            self._owned(entry)[(kind, plan.attachment.tag)] = (list(want.chains), list(want.elems))

    @staticmethod
    def _has_marker(entry: libnft.PoolEntry, kind: str) -> bool:
        """Whether this version's shared objects are in place (:func:`skeleton_marker`); an
        unanswered probe says no, and the shared objects are simply reset."""
        try:
            return nftnl.chain_use(entry.netlink, FAMILY, table(kind), skeleton_marker(kind)) is not None
        except (NftError, OSError):
            return False

    def _slow_add(self, entry: libnft.PoolEntry, plan: Plan, want: Wanted) -> None:
        """ADD after reading: drop the attachment's earlier objects, evict key holders."""
        kind, t, nft = plan.kind, table(plan.kind), entry.nft
        objs = nft.list_table(FAMILY, t) or []
        mine = set(role_chains(kind, plan.attachment))
        chains = {c["name"] for c in _objects(objs, "chain")}
        wanted_keys = {(m, _freeze(key)) for m, key, _ in want.elems}
        doomed = {c for c in mine if c in chains}
        elems = list(_raw_elems(objs))
        holders = {c for m, key, c in elems if (m, _freeze(key)) in wanted_keys and c not in mine}
        doomed_tags = {plan.attachment.tag} | {t_ for t_ in (_chain_tag(kind, c) for c in holders) if t_}
        for tag in sorted(doomed_tags - {plan.attachment.tag}):  # evicted wholesale: all its chains
            log.warning("nftables %s: evicting attachment %s, which held a key %s needs", t, tag,
                        plan.attachment.tag)
        doomed |= {c for c in chains if _chain_tag(kind, c) in doomed_tags} | holders
        for tag in doomed_tags - {plan.attachment.tag}:
            self._owned(entry).pop((kind, tag), None)
        cmds = _ensure(kind)
        cmds += _drop(t, doomed, [(m, key, c) for m, key, c in elems if c in doomed])
        foreign_rules: list[Cmd] = []
        if feature.of(kind).nft_foreign:
            foreign = self._foreign(entry, fresh=True)
            for r in self._foreign_rules_of(nft, foreign):
                parsed = parse_comment(r.get("comment"))
                if parsed and parsed[2] == kind and parsed[1] in doomed_tags | {plan.attachment.tag}:
                    cmds.append(_delete_rule(r))
            foreign_rules = _foreign_rules(plan, foreign)
        cmds += _create(plan, want, foreign_rules)
        self._run(nft, cmds, f"ADD ({kind})")

    # ------------------------------------------------------------------ DEL
    def delete(self, attachment: Attachment, kind: str) -> None:
        t = table(kind)
        with libnft.pooled() as entry:
            known = self._owned(entry).pop((kind, attachment.tag), None)
            if known is not None and not (feature.of(kind).nft_foreign and self._foreign(entry)):
                chains, elems = known
                # one raw batch (no libnftables cache fill); each step tolerates "already gone"
                msgs = [nftnl.chain("add", FAMILY, t, c) for c in chains]
                for m, key, target in elems:
                    raw = _key_bytes(m, key)
                    msgs += [nftnl.element("add", FAMILY, t, m, raw, target),
                             nftnl.element("delete", FAMILY, t, m, raw)]
                msgs += [nftnl.chain("delete", FAMILY, t, c) for c in chains]
                try:
                    nftnl.transaction(entry.netlink, msgs)
                except (NftError, OSError) as exc:  # changed by another process since our ADD: read it
                    log.debug("nftables DEL (%s) of %s from memory refused (%s)", kind, attachment.tag, exc)
                else:
                    self._try_guard(entry, kind)
                    return
            if self._delete_read(entry, attachment, kind):
                self._try_guard(entry, kind)

    def _delete_read(self, entry: libnft.PoolEntry, attachment: Attachment, kind: str) -> bool:
        """DEL from the attachment's own chains (listed: a handful of rules); True if any."""
        t, nft = table(kind), entry.nft
        gone: list[str] = []
        for attempt in (1, 2):
            cmds: list[Cmd] = []
            gone = []
            elems: list[Elem] = []
            for chain in role_chains(kind, attachment):
                objs = nft.list_chain(FAMILY, t, chain)
                if objs is None:
                    continue
                gone.append(chain)
                elems += _keys(kind, chain, _objects(objs, "rule"))
            if gone:
                cmds += _drop(t, gone, elems)
            if feature.of(kind).nft_foreign:
                foreign = self._foreign(entry, fresh=attempt > 1)
                cmds += [
                    _delete_rule(r)
                    for r in self._foreign_rules_of(nft, foreign)
                    if attachment.owns(r.get("comment"), kind)
                ]
            if not cmds:
                break
            try:
                nft.run(cmds)
                break
            except NftError as exc:  # changed under us (a concurrent GC/ADD): read again
                if attempt == 2:
                    raise CNIError(Code.IO_FAILURE, f"nftables DEL ({kind}) failed", str(exc)) from None
        return bool(gone)

    # ------------------------------------------------------------------ GC
    def gc(self, network: Attachment, valid_tags: set[str], kind: str) -> None:
        """Delete ``kind`` objects of ``network.network`` whose attachment tag is not valid."""
        net_tag = network.tag.split("-")[0]
        t = table(kind)

        def stale(tag: str | None) -> bool:
            return bool(tag) and str(tag).split("-")[0] == net_tag and tag not in valid_tags

        with libnft.pooled() as entry:  # no file lock: the batch tolerates concurrent removals
            nft = entry.nft
            objs = nft.list_table(FAMILY, t)
            cmds: list[Cmd] = []
            if objs is not None:
                doomed = {c["name"] for c in _objects(objs, "chain") if stale(_chain_tag(kind, c["name"]))}
                cmds += _drop(t, doomed, [(m, key, c) for m, key, c in _raw_elems(objs) if c in doomed])
                for r in _objects(objs, "rule"):  # rules of an earlier layout in shared chains
                    parsed = parse_comment(r.get("comment"))
                    if r["chain"] not in doomed and parsed and parsed[2] == kind and stale(parsed[1]):
                        cmds.append(_delete_rule(r))
            if feature.of(kind).nft_foreign:
                for r in self._foreign_rules_of(nft, self._foreign(entry, fresh=True)):
                    parsed = parse_comment(r.get("comment"))
                    if parsed and parsed[2] == kind and stale(parsed[1]):
                        cmds.append(_delete_rule(r))
            owned = self._owned(entry)
            for key in [k for k in owned if k[0] == kind and stale(k[1])]:
                del owned[key]
            if cmds:
                self._run(nft, cmds, f"GC ({kind})")
            if objs is not None:
                self._tables(entry).add(kind)
                self._try_guard(entry, kind)

    # ------------------------------------------------------------------ CHECK
    def check(self, plan: Plan) -> None:
        want = wanted(plan)
        kind, t = plan.kind, table(plan.kind)
        where = f"nftables {FAMILY} {t}"
        with libnft.pooled() as entry:
            objs = entry.nft.list_table(FAMILY, t) or []
            foreign = self._foreign(entry, fresh=True) if feature.of(kind).nft_foreign else []
            foreign_have = self._foreign_rules_of(entry.nft, foreign)
        rules = list(_objects(objs, "rule"))
        for chain, exprs in want.chains.items():
            have = [r for r in rules if r["chain"] == chain and plan.attachment.owns(r.get("comment"), kind)]
            if len(have) != len(exprs) + 1:  # + the anchor goto
                raise self._missing(plan, f"{where} chain {chain}: expected {len(exprs)} rules, "
                                          f"found {max(len(have) - 1, 0)}")
        held = {(m, _freeze(key)): c for m, key, c in _raw_elems(objs)}
        for m, key, chain in want.elems:
            if held.get((m, _freeze(key))) != chain:
                raise self._missing(plan, f"{where} map {m}: no element for {_freeze(key)} -> {chain}")
        if foreign:
            for family, tbl, name in foreign:
                count = len(_foreign_rules(plan, [(family, tbl, name)]))
                found = sum(
                    1 for r in foreign_have
                    if (r["family"], r["table"], r["chain"]) == (family, tbl, name)
                    and plan.attachment.owns(r.get("comment"), kind)
                )
                if found != count:
                    raise self._missing(
                        plan, f"nftables {family} {tbl} chain {name}: expected {count} rules, found {found}")

    @staticmethod
    def _missing(plan: Plan, text: str) -> CNIError:
        return CNIError(Code.INVALID_ENVIRONMENT, f"{plan.kind} rules missing", f"{text} ({plan.attachment.tag})")

    # ------------------------------------------------------------------ probes
    def footprint(self, kind: str) -> bool:
        """Whether our table for ``kind`` exists here (detection stickiness).

        One GETCHAIN of a static chain of the table: constant whatever else the netns holds,
        and no libnftables context (``list tables`` fills libnftables' whole cache).
        """
        with libnft.pooled() as entry:
            found = nftnl.chain_use(entry.netlink, FAMILY, table(kind), feature.of(kind).nft_probe) is not None
            if found:
                self._tables(entry).add(kind)
            return found

    def may_hold(self, kind: str) -> bool:
        """DEL/GC always look here: their own reads (one small chain each) are the probe."""
        return True


# ---------------------------------------------------------------------- listing helpers
_PROTO_NUM = {"tcp": 6, "udp": 17, "sctp": 132}
_NFPROTO_NUM = {"ipv4": 2, "ipv6": 10}


def _pad4(data: bytes) -> bytes:
    return data + b"\0" * (-len(data) % 4)


def _key_bytes(name: str, key: Key) -> bytes:
    """A map key as the kernel stores it (see :func:`_maps` for the types): addresses in
    network order, a concatenation's fields each padded to 4 bytes, ports big-endian."""
    if isinstance(key, dict):
        first, proto, port = key["concat"]
        head = bytes([_NFPROTO_NUM[first]]) if name == "anyip" else ipaddress.ip_address(first).packed
        return _pad4(head) + _pad4(bytes([_PROTO_NUM[proto]])) + _pad4(int(port).to_bytes(2, "big"))
    return ipaddress.ip_address(key).packed


def _target(value: Any) -> str:
    if isinstance(value, dict):
        for verdict in ("jump", "goto"):
            if verdict in value:
                return str(value[verdict].get("target"))
    return ""


def _freeze(key: Key) -> Any:
    """A hashable form of a JSON key (as listed or as built)."""
    if isinstance(key, dict) and "concat" in key:
        return tuple(str(k) for k in key["concat"])
    return str(key)


def _raw_elems(objs: Iterable[Cmd]) -> Iterator[tuple[str, Key, str]]:
    """(map, key as listed, target chain) of every map element in a table listing."""
    for s in _objects(objs, "map"):
        for key, value in s.get("elem") or []:
            yield s["name"], key, _target(value)


def _chain_tag(kind: str, name: str) -> str | None:
    for prefix in feature.of(kind).nft_roles:
        if name.startswith(prefix) and parse_comment(f"{name[len(prefix):]}, {kind},"):
            return name[len(prefix):]
    return None
