"""The one interface both backends implement, backend selection, and the public verbs.

Selection (``backend: "nftables" | "iptables"`` wins when given; otherwise, in order):

1. kube-proxy's rules: ``KUBE-*`` chains in the legacy x_tables -> iptables; a
   ``kube-proxy`` nftables table or ``KUBE-*`` chains in nftables (iptables-nft) -> nftables.
2. our own rules already on the node for this feature (stay where earlier ADDs went).
3. the ``iptables`` alternative: a link chain through ``*legacy*`` -> iptables, through
   ``*nft*`` -> nftables.
4. nftables when libnftables loads, else iptables.

So our rules land in the rule set the node's operators and kube-proxy already look at.
DEL and GC always clean *both* backends (cheaply: a backend with no tables of ours is a
no-op), so a detection that flips between ADD and DEL cannot leak rules.
"""

from __future__ import annotations

import logging
import os
import shutil
from typing import Protocol

from metacni.spec.errors import CNIError, Code

from . import libnft
from .identity import Attachment
from .plan import Plan

log = logging.getLogger(__name__)

NFTABLES, IPTABLES = "nftables", "iptables"
BACKENDS = (NFTABLES, IPTABLES)


class Backend(Protocol):
    name: str

    def add(self, plan: Plan) -> None:
        """Install the plan's rules, replacing this attachment's earlier ones, atomically."""

    def delete(self, attachment: Attachment, kind: str) -> None:
        """Remove every ``kind`` rule of the attachment; no-op when there is none."""

    def gc(self, network: Attachment, valid_tags: set[str], kind: str) -> None:
        """Remove ``kind`` rules of the network whose attachment tag is not in ``valid_tags``."""

    def check(self, plan: Plan) -> None:
        """Raise CNIError when a rule of the plan is missing."""

    def footprint(self, kind: str) -> bool:
        """Whether rules of ours for ``kind`` exist in this netns."""


def get(name: str) -> Backend:
    if name == NFTABLES:
        from .nftables import NftablesBackend

        return NftablesBackend()
    if name == IPTABLES:
        from .iptables import IptablesBackend

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
    from .iptables import XTABLES_LOCK, tables_present
    from .locking import file_lock

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


def _nft_kube_proxy() -> bool:
    if not libnft.available():
        return False
    with libnft.Nft() as nft:
        for obj in nft.list_ruleset():
            if "table" in obj and obj["table"]["name"] == "kube-proxy":
                return True
            if "chain" in obj and str(obj["chain"]["name"]).startswith("KUBE-"):
                return True
    return False


def iptables_alternative() -> str | None:
    """'iptables' or 'nftables' from the ``iptables`` command's link chain, None if unknown."""
    path = shutil.which("iptables", path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin")
    seen = 0
    while path and seen < 10:
        base = os.path.basename(path)
        if "legacy" in base:
            return IPTABLES
        if "nft" in base:
            return NFTABLES
        if not os.path.islink(path):
            break
        target = os.readlink(path)
        path = os.path.join(os.path.dirname(path), target)
        seen += 1
    return None


def detect(kind: str) -> str:
    """Pick the backend the node already uses (see the module docstring for the order)."""
    if _legacy_kube_proxy():
        return IPTABLES
    if _nft_kube_proxy():
        return NFTABLES
    for name in BACKENDS:
        try:
            if get(name).footprint(kind):
                return name
        except Exception:  # an unusable backend has no footprint
            log.debug("footprint probe of %s failed", name, exc_info=True)
    alt = iptables_alternative()
    if alt is not None:
        return alt
    return NFTABLES if libnft.available() else IPTABLES


def choose(requested: str | None, kind: str) -> Backend:
    name = validate_name(requested) or detect(kind)
    log.debug("firewall backend for %s: %s", kind, name)
    return get(name)


# ---------------------------------------------------------------------- verbs
def add(plan: Plan, backend: str | None = None) -> None:
    """Install ``plan``; on failure nothing of the attachment's ``kind`` rules is left."""
    chosen = choose(backend, plan.kind)
    try:
        chosen.add(plan)
    except CNIError as exc:
        if exc.code != Code.INVALID_CONFIG:  # config errors are raised before any change
            _rollback(chosen, plan)
        raise
    except Exception:
        _rollback(chosen, plan)
        raise


def _rollback(chosen: Backend, plan: Plan) -> None:
    try:
        chosen.delete(plan.attachment, plan.kind)
    except Exception:
        log.exception("rollback of %s rules for %s failed", plan.kind, plan.attachment)


def delete(attachment: Attachment, kind: str, backend: str | None = None) -> None:
    """Remove the attachment's rules from the chosen backend and, if present, the other one."""
    validate_name(backend)
    errors: list[str] = []
    for name in BACKENDS:
        if name == NFTABLES and not libnft.available():
            continue
        try:
            get(name).delete(attachment, kind)
        except Exception as exc:
            log.exception("%s DEL of %s rules failed", name, kind)
            errors.append(f"{name}: {exc}")
    if errors:
        raise CNIError(Code.IO_FAILURE, f"removing {kind} rules failed", "; ".join(errors))


def gc(network: str, valid: list[tuple[str, str]], kind: str) -> None:
    net = Attachment(network, "", "")
    tags = {Attachment(network, cid, ifname).tag for cid, ifname in valid}
    errors: list[str] = []
    for name in BACKENDS:
        if name == NFTABLES and not libnft.available():
            continue
        try:
            get(name).gc(net, tags, kind)
        except Exception as exc:
            log.exception("%s GC of %s rules failed", name, kind)
            errors.append(f"{name}: {exc}")
    if errors:
        raise CNIError(Code.IO_FAILURE, f"GC of {kind} rules failed", "; ".join(errors))


def check(plan: Plan, backend: str | None = None) -> None:
    choose(backend, plan.kind).check(plan)
