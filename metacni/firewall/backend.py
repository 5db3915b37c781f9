"""Backend selection and the public verbs (the interface both backends implement: :mod:`.protocol`).

Selection (``backend: "nftables" | "iptables"`` wins when given; otherwise, in order):

1. kube-proxy's rules: ``KUBE-*`` chains in the legacy x_tables -> iptables; a
   ``kube-proxy`` nftables table or ``KUBE-*`` chains in nftables (iptables-nft) -> nftables.
2. our own rules already on the node for this feature (stay where earlier ADDs went).
3. the ``iptables`` alternative: a link chain through ``*legacy*`` -> iptables, through
   ``*nft*`` -> nftables.
4. nftables when libnftables loads, else iptables.

So our rules land in the rule set the node's operators and kube-proxy already look at.
DEL and GC clean *every* backend that holds rules of ours for the feature (a narrow
existence probe of our own table/chains decides), so a detection that flips between ADD
and DEL cannot leak rules.

Detection costs a few libnftables/x_tables reads that grow with the pods (figures in
bench/README.md), so :func:`choose` remembers the decision per (netns, feature)
for :data:`DETECT_TTL` seconds and costs nothing per call in between. python-iptables
(a heavy import) is only imported when x_tables that could hold our rules exist
(:mod:`.xtables`), so a node on nftables never loads it.
"""

from __future__ import annotations

import os
import shutil
import threading
import time
from logging import getLogger
from pathlib import Path

from metacni.netlink import nftables as nftnl
from metacni.spec.errors import CNIError, Code

from . import feature, libnft, xtables
from .identity import Attachment
from .locking import file_lock
from .plan import Plan
from .protocol import Backend
from .xtables import XTABLES_LOCK, tables_present

log = getLogger(__name__)

NFTABLES, IPTABLES = "nftables", "iptables"
BACKENDS = (NFTABLES, IPTABLES)


def get(name: str) -> Backend:
    if name == NFTABLES:
        from .nft import NftablesBackend

        return NftablesBackend()
    if name == IPTABLES:
        from .ipt import IptablesBackend

        return IptablesBackend()
    raise CNIError(
        Code.INVALID_CONFIG, "invalid backend", f"backend: {name!r} is not one of {', '.join(BACKENDS)}"
    )


def validate_name(value: object, field: str = "backend") -> str | None:
    if value in (None, ""):
        return None
    if value not in BACKENDS:
        raise CNIError(
            Code.INVALID_CONFIG, f"invalid {field}", f"{field}: {value!r} is not one of {', '.join(BACKENDS)}"
        )
    return str(value)


# ---------------------------------------------------------------------- detection
def _legacy_kube_proxy() -> bool:
    for v in (4, 6):
        present = tables_present(v)
        if "nat" not in present and "filter" not in present:
            continue
        import iptc

        cls = iptc.Table if v == 4 else iptc.Table6
        with file_lock(XTABLES_LOCK):
            for name in ("nat", "filter"):
                if name not in present:
                    continue
                table = cls(name, autocommit=False)
                table.refresh()
                try:
                    if any(table.is_chain(c) for c in ("KUBE-SERVICES", "KUBE-POSTROUTING", "KUBE-FORWARD")):
                        return True
                finally:
                    table.close()
    return False


#: (table, chain) kube-proxy's iptables mode always creates (what :func:`_legacy_kube_proxy` looks for)
KUBE_PROXY_CHAINS = (("nat", "KUBE-SERVICES"), ("nat", "KUBE-POSTROUTING"), ("filter", "KUBE-FORWARD"),
                     ("filter", "KUBE-SERVICES"))


def _nft_kube_proxy() -> bool:
    """kube-proxy's nftables-mode ``kube-proxy`` table, or its iptables-mode chains made
    through iptables-nft.

    Point lookups on netfilter's netlink socket: listing every chain would go through
    libnftables' cache fill, which grows with the pods (four chains each).
    """
    if not libnft.available():
        return False
    with libnft.pooled() as entry:
        for family in ("ip", "ip6"):
            if nftnl.table_exists(entry.netlink, family, "kube-proxy"):
                return True
            if any(nftnl.chain_use(entry.netlink, family, t, c) is not None for t, c in KUBE_PROXY_CHAINS):
                return True
    return False


def iptables_alternative() -> str | None:
    """'iptables' or 'nftables' from the ``iptables`` command's link chain, None if unknown."""
    found = shutil.which("iptables", path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin")
    path = Path(found) if found else None
    seen = 0
    while path is not None and seen < 10:
        if "legacy" in path.name:
            return IPTABLES
        if "nft" in path.name:
            return NFTABLES
        if not path.is_symlink():
            break
        path = path.parent / path.readlink()  # an absolute target replaces the parent
        seen += 1
    return None


def detect(kind: str) -> str:
    """Pick the backend the node already uses (see the module docstring for the order)."""
    if _legacy_kube_proxy():
        return IPTABLES
    if _nft_kube_proxy():
        return NFTABLES
    for name in BACKENDS:
        if name == IPTABLES and not xtables.may_hold(feature.of(kind).ipt_table):
            continue  # no x_table to look at (and no iptc import)
        if name == NFTABLES and not libnft.available():
            continue
        try:
            if get(name).footprint(kind):
                return name
        except Exception:  # an unusable backend has no footprint
            log.debug("footprint probe of %s failed", name, exc_info=True)
    alt = iptables_alternative()
    if alt is not None:
        return alt
    return NFTABLES if libnft.available() else IPTABLES


#: how long a detection result is trusted (kube-proxy switching modes is picked up after it)
DETECT_TTL = 60.0
#: bound on cached decisions (one per netns and feature; a node daemon needs three)
_DETECT_MAX = 64
_detected: dict[tuple[int, int, str], tuple[str, float]] = {}
_detected_lock = threading.Lock()


def _cached_detect(kind: str) -> str:
    """:func:`detect`, remembered per (calling thread's netns, kind) for :data:`DETECT_TTL`.

    No probe on a hit: DEL and GC clean every backend that may hold our rules, so a stale
    decision cannot leak rules, and the node-level facts detection reads (kube-proxy's
    mode, the iptables alternative) do not change from one pod to the next. The decision
    lives in the netns's pooled libnftables entry, which pins the netns: a new namespace
    cannot reuse the inode and inherit the decision while it is remembered.
    """
    now = time.monotonic()
    if not libnft.available():
        return _cached_detect_no_nft(kind, now)
    with libnft.pooled() as entry:
        hit = entry.state.detected.get(kind)
    if hit is not None and now - hit[1] < DETECT_TTL:
        return hit[0]
    name = detect(kind)  # takes the pooled entry itself
    with libnft.pooled() as entry:
        entry.state.detected[kind] = (name, now)
    return name


def _cached_detect_no_nft(kind: str, now: float) -> str:
    """Without libnftables there is no entry to pin the netns: key on its inode instead."""
    key = (*libnft.netns_key(), kind)
    with _detected_lock:
        hit = _detected.get(key)
    if hit is not None and now - hit[1] < DETECT_TTL:
        return hit[0]
    name = detect(kind)
    with _detected_lock:
        if key not in _detected and len(_detected) >= _DETECT_MAX:
            _detected.pop(next(iter(_detected)))  # oldest first (insertion order)
        _detected.pop(key, None)
        _detected[key] = (name, now)
    return name


def choose(requested: str | None, kind: str) -> Backend:
    name = validate_name(requested) or _cached_detect(kind)
    log.debug("firewall backend for %s: %s", kind, name)
    return get(name)


# ---------------------------------------------------------------------- verbs
def apply(plan: Plan, backend: str | None = None) -> None:
    """Install ``plan``, or remove the attachment's rules when the plan installs nothing
    (no addresses, no mappings: a re-ADD without them leaves nothing behind)."""
    if plan.empty:
        delete(plan.attachment, plan.kind, backend)
    else:
        add(plan, backend)


def add(plan: Plan, backend: str | None = None) -> None:
    """Install ``plan``; on failure nothing of the attachment's ``kind`` rules is left."""
    chosen = choose(backend, plan.kind)
    try:
        chosen.add(plan)
    except CNIError as exc:
        if exc.code != Code.INVALID_CONFIG:  # config errors are raised before any change
            rollback(chosen, plan)
        raise
    except Exception:
        rollback(chosen, plan)
        raise


def rollback(chosen: Backend, plan: Plan) -> None:
    try:
        chosen.delete(plan.attachment, plan.kind)
    except Exception:
        log.exception("rollback of %s rules for %s failed", plan.kind, plan.attachment)


def _holders(kind: str) -> list[Backend]:
    """Backends that hold rules of ours for ``kind`` here (narrow probes, no rule set dumps).

    A failing probe counts as "may hold": the DEL/GC itself then reports the real error
    rather than us silently skipping a backend that could leak rules.
    """
    out: list[Backend] = []
    for name in BACKENDS:
        if name == NFTABLES and not libnft.available():
            continue
        if name == IPTABLES and not xtables.may_hold(feature.of(kind).ipt_table):
            continue  # no x_table of that name: nothing of ours (and no iptc import)
        b = get(name)
        try:
            if not b.may_hold(kind):
                continue
        except Exception:
            log.debug("footprint probe of %s failed", name, exc_info=True)
        out.append(b)
    return out


def delete(attachment: Attachment, kind: str, backend: str | None = None) -> None:
    """Remove the attachment's rules from every backend that holds rules of ours for ``kind``."""
    validate_name(backend)
    errors: list[str] = []
    for b in _holders(kind):
        name = b.name
        try:
            b.delete(attachment, kind)
        except Exception as exc:
            log.exception("%s DEL of %s rules failed", name, kind)
            errors.append(f"{name}: {exc}")
    if errors:
        raise CNIError(Code.IO_FAILURE, f"removing {kind} rules failed", "; ".join(errors))


def gc(network: str, valid: list[tuple[str, str]], kind: str) -> None:
    net = Attachment(network, "", "")
    tags = {Attachment(network, cid, ifname).tag for cid, ifname in valid}
    errors: list[str] = []
    for b in _holders(kind):
        name = b.name
        try:
            b.gc(net, tags, kind)
        except Exception as exc:
            log.exception("%s GC of %s rules failed", name, kind)
            errors.append(f"{name}: {exc}")
    if errors:
        raise CNIError(Code.IO_FAILURE, f"GC of {kind} rules failed", "; ".join(errors))


def check(plan: Plan, backend: str | None = None) -> None:
    choose(backend, plan.kind).check(plan)
