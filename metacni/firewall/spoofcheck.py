"""MAC spoof check for bridge ports (the bridge plugin's ``macspoofchk``), in nftables.

Why: on a plain Linux bridge a pod can send frames with any source MAC and so impersonate
another pod or the gateway at layer 2. The reference bridge plugin stops that with a
``bridge nat`` table whose per-container chain only lets frames from the container MAC
through. We do the same in a table of our own, and key everything on the attachment
identity (:mod:`.identity`) rather than on state only ADD knew, so DEL needs neither the
netns nor the veth, a repeated DEL is a no-op, and GC can sweep attachments that are gone.

Layout (family ``bridge``, table ``metacni_spoofcheck``):

* ``prerouting``: base chain, type ``filter``, hook ``prerouting``, priority -300 (the
  reference's priority). ``nat``-type chains are not available in the bridge family on
  current kernels (ENOENT on 6.18), and a drop needs no NAT.
  One rule per attachment: ``iifname == <host veth> jump cni-br-iface-<tag>``.
* ``cni-br-iface-<tag>``: ``ether saddr == <container MAC> accept``, then ``drop``.
  ``<tag>`` is the attachment tag (network hash, dash, container-id/ifname hash), so the
  chain name alone says which network and attachment it belongs to.

Every rule also carries the attachment's comment (``<tag>, spoofcheck, net: .., if: ..,
id: ..``) for operators. Each ADD, DEL and GC is one libnftables batch (on the netns's
pooled context) under a file lock; the batch that removes the last attachment deletes the
table, so a node returns to the ruleset it had. All functions act in the calling thread's
network namespace (the node's).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from metacni.spec.errors import CNIError, Code

from . import libnft, locking
from .identity import Attachment, network_tag
from .libnft import Nft, NftError

if TYPE_CHECKING:
    from typing import Any

    Cmd = dict[str, Any]

FAMILY = "bridge"
TABLE = "metacni_spoofcheck"
BASE_CHAIN = "prerouting"
PRIORITY = -300
CHAIN_PREFIX = "cni-br-iface-"
KIND = "spoofcheck"
LOCK_PATH = Path("/run/metacni-spoofcheck.lock")

_MAC_RE = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")
_TAG_RE = re.compile(r"^[0-9a-f]{16}-[0-9a-f]{16}$")


def chain_name(attachment: Attachment) -> str:
    """``cni-br-iface-<attachment tag>``: derived from the identity alone."""
    return CHAIN_PREFIX + attachment.tag


def _tag_of_chain(name: str) -> str | None:
    tag = name[len(CHAIN_PREFIX):] if name.startswith(CHAIN_PREFIX) else ""
    return tag if _TAG_RE.fullmatch(tag) else None


# ---------------------------------------------------------------------- building blocks
def _table() -> Cmd:
    return {"table": {"family": FAMILY, "name": TABLE}}


def _chain(name: str, **base: Any) -> Cmd:
    return {"chain": {"family": FAMILY, "table": TABLE, "name": name, **base}}


def _base_chain() -> Cmd:
    return _chain(BASE_CHAIN, type="filter", hook="prerouting", prio=PRIORITY, policy="accept")


def _rule(chain: str, exprs: list[Cmd], comment: str) -> Cmd:
    return {"rule": {"family": FAMILY, "table": TABLE, "chain": chain, "expr": exprs, "comment": comment}}


def _match(left: Cmd, right: Any) -> Cmd:
    return {"match": {"op": "==", "left": left, "right": right}}


def _iifname(name: str) -> Cmd:
    return _match({"meta": {"key": "iifname"}}, name)


def _saddr(mac: str) -> Cmd:
    return _match({"payload": {"protocol": "ether", "field": "saddr"}}, mac)


def _normalise_mac(mac: str) -> str:
    norm = mac.strip().lower()
    if not _MAC_RE.fullmatch(norm):
        raise CNIError(Code.INVALID_CONFIG, "invalid MAC address", f"macspoofchk: {mac!r} is not a MAC address")
    return norm


def _objects(objs: list[Cmd], kind: str) -> Iterator[dict[str, Any]]:
    for obj in objs:
        if kind in obj:
            yield obj[kind]


@contextmanager
def _session() -> Iterator[Nft]:
    """The netns's pooled libnftables context (see :func:`.libnft.pooled`: freeing a context
    after deletions waits for the kernel), then the file lock: the same order as the nftables
    backend takes its locks in."""
    with libnft.pooled() as entry, locking.file_lock(LOCK_PATH):
        yield entry.nft


def _run(nft: Nft, cmds: list[Cmd], what: str) -> None:
    try:
        nft.run(cmds)
    except NftError as exc:
        raise CNIError(Code.IO_FAILURE, f"nftables spoof check {what} failed", str(exc)) from None


# ---------------------------------------------------------------------- verbs
def add_spoofcheck(network: str, container_id: str, ifname: str, host_veth: str, mac: str) -> None:
    """Let only frames with source ``mac`` in from bridge port ``host_veth``.

    Replaces the attachment's earlier spoof-check rules (if any) in the same batch.
    """
    if not libnft.available():
        raise CNIError(Code.INVALID_ENVIRONMENT, "macspoofchk needs nftables",
                       "libnftables could not be loaded on this node")
    mac = _normalise_mac(mac)
    att = Attachment(network, container_id, ifname)
    chain, comment = chain_name(att), att.comment(KIND)
    with _session() as nft:
        objs = nft.list_table(FAMILY, TABLE) or []
        stale = [r for r in _objects(objs, "rule") if r["chain"] == BASE_CHAIN and att.owns(r.get("comment"), KIND)]
        cmds: list[Cmd] = [{"add": _table()}, {"add": _base_chain()}]
        cmds += [_delete_rule(r) for r in stale]
        cmds += [
            {"add": _chain(chain)},
            {"flush": _chain(chain)},
            {"add": _rule(chain, [_saddr(mac), {"accept": None}], comment)},
            {"add": _rule(chain, [{"drop": None}], comment)},
            {"add": _rule(BASE_CHAIN, [_iifname(host_veth), {"jump": {"target": chain}}], comment)},
        ]
        _run(nft, cmds, "ADD")


def del_spoofcheck(network: str, container_id: str, ifname: str) -> None:
    """Remove the attachment's spoof check. Idempotent; needs no netns, veth or MAC."""
    if not libnft.available():
        return  # nothing can have been installed
    tag = Attachment(network, container_id, ifname).tag
    with _session() as nft:
        _remove(nft, lambda t: t == tag, "DEL")


def gc_spoofcheck(network: str, valid_attachments: Iterable[tuple[str, str]]) -> None:
    """Remove spoof checks of ``network`` whose (container id, ifname) is not in the valid list."""
    if not libnft.available():
        return
    net = network_tag(network)
    valid = {Attachment(network, cid, ifname).tag for cid, ifname in valid_attachments}
    with _session() as nft:
        _remove(nft, lambda t: t.split("-")[0] == net and t not in valid, "GC")


def check_spoofcheck(network: str, container_id: str, ifname: str, host_veth: str, mac: str) -> list[str]:
    """What is missing or different in the attachment's spoof check (empty when all is in place)."""
    if not _MAC_RE.fullmatch(mac.strip().lower()):
        return [f"macspoofchk: {mac!r} is not a MAC address"]
    mac = mac.strip().lower()
    att = Attachment(network, container_id, ifname)
    chain = chain_name(att)
    if not libnft.available():
        return ["macspoofchk: libnftables could not be loaded"]
    with libnft.pooled() as entry:
        objs = entry.nft.list_table(FAMILY, TABLE)
    where = f"nftables {FAMILY} {TABLE}"
    if objs is None:
        return [f"macspoofchk: table {FAMILY} {TABLE} missing"]
    problems = []
    base = next((c for c in _objects(objs, "chain") if c["name"] == BASE_CHAIN), None)
    if base is None or base.get("hook") != "prerouting":
        problems.append(f"macspoofchk: {where} has no prerouting base chain")
    rules = list(_objects(objs, "rule"))
    jump = [_iifname(host_veth), {"jump": {"target": chain}}]
    if not any(r["chain"] == BASE_CHAIN and r["expr"] == jump for r in rules):
        problems.append(f"macspoofchk: no jump from {host_veth} to chain {chain} in {where}")
    if not any(c["name"] == chain for c in _objects(objs, "chain")):
        problems.append(f"macspoofchk: chain {chain} missing in {where}")
    else:
        have = [r["expr"] for r in rules if r["chain"] == chain]
        want = [[_saddr(mac), {"accept": None}], [{"drop": None}]]
        if have != want:
            problems.append(f"macspoofchk: chain {chain} in {where} does not accept only {mac}")
    return problems


# ---------------------------------------------------------------------- removal
def _delete_rule(rule: dict[str, Any]) -> Cmd:
    return {"delete": {"rule": {k: rule[k] for k in ("family", "table", "chain", "handle")}}}


def _rule_tag(rule: dict[str, Any]) -> str | None:
    comment = rule.get("comment")
    if not comment:
        return None
    tag, _, rest = str(comment).partition(", ")
    return tag if _TAG_RE.fullmatch(tag) and rest.startswith(f"{KIND},") else None


def _remove(nft: Nft, doomed: Callable[[str], bool], what: str) -> None:
    """Delete every attachment whose tag satisfies ``doomed``; the table with the last one."""
    objs = nft.list_table(FAMILY, TABLE)
    if objs is None:
        return
    chains = {c["name"]: _tag_of_chain(c["name"]) for c in _objects(objs, "chain") if c["name"] != BASE_CHAIN}
    jumps = [(r, _rule_tag(r)) for r in _objects(objs, "rule") if r["chain"] == BASE_CHAIN]
    tags = {t for t in chains.values() if t} | {t for _, t in jumps if t}
    gone = {t for t in tags if doomed(t)}
    if not gone:
        return
    # Other attachments keep the table, and so does anything we do not recognise.
    foreign = any(t is None for t in chains.values()) or any(t is None for _, t in jumps)
    if not tags - gone and not foreign:
        _run(nft, [{"delete": _table()}], what)
        return
    cmds = [_delete_rule(r) for r, t in jumps if t in gone]
    for name, t in chains.items():
        if t in gone:
            cmds += [{"flush": _chain(name)}, {"delete": _chain(name)}]
    _run(nft, cmds, what)
