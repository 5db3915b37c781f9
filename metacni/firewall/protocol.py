"""The interfaces of the firewall: a backend (``metacni.plugin.FirewallBackend``) and a feature.

:mod:`.backend` re-exports :class:`Backend`; the engines name :class:`Feature` in annotations.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

if TYPE_CHECKING:
    from .identity import Attachment
    from .ipt import Session
    from .nftrules import Cmd, Key, Wanted
    from .plan import Plan
    from .xtables import Layout

P = TypeVar("P", contravariant=True)


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

    def may_hold(self, kind: str) -> bool:
        """Whether DEL/GC of ``kind`` has to look at this backend at all (a narrow probe)."""


class Feature(Protocol[P]):
    """One firewall feature (portmap, masq, forward): its plan goes in, its rules come out, for
    both backends side by side. The engines (:mod:`.nft`, :mod:`.ipt`) own tables, chains,
    maps, per-attachment ownership and locking; a feature only describes its layout."""

    kind: str

    # ---------------------------------------------------------------- nftables (:mod:`.nft`)
    #: the feature's ``inet`` table
    nft_table: str
    #: per-attachment chain name prefixes (chain name = prefix + attachment tag)
    nft_roles: tuple[str, ...]
    #: a static chain present in every version of the table (a cheap existence probe)
    nft_probe: str
    #: whether the attachment's accepts also go at the top of foreign forward base chains
    nft_foreign: bool

    def nft_maps(self) -> list[tuple[str, Any]]:
        """(name, key type) of the table's verdict maps."""

    def nft_skeleton(self) -> list[tuple[Cmd, list[list[Cmd]]]]:
        """(chain, static rules) of the table, in creation order (jump targets first)."""

    def nft_wanted(self, plan: P) -> Wanted:
        """The attachment's chains and map elements; raises CNIError on bad input, before any change."""

    def nft_key(self, chain: str, exprs: list[Cmd]) -> tuple[str, Key] | None:
        """The map element leading to ``chain`` read back from one of its listed rules (None:
        a rule that carries no key, e.g. the anchor goto)."""

    def nft_raw(self, plan: P) -> bool:
        """Whether the raw encoder (:mod:`metacni.netlink.nftables`) can write the plan's rules."""

    def nft_accepts(self, plan: P, family: str) -> list[list[Cmd]]:
        """Rules for a foreign forward base chain of ``family`` (only with :attr:`nft_foreign`)."""

    # ---------------------------------------------------------------- iptables (:mod:`.ipt`)
    #: the x_table the feature's rules live in
    ipt_table: str
    #: the feature's shared chains (not per attachment)
    ipt_shared: tuple[str, ...]
    #: the chains besides the per-attachment ones that hold rules carrying an attachment comment
    ipt_rule_chains: tuple[str, ...]

    def ipt_validate(self, plan: P) -> None:
        """Raise CNIError for options the iptables backend cannot honour."""

    def ipt_layout(self, plan: P, version: int) -> Layout:
        """What one family of the plan needs: chains, shared rules (idempotent), owned rules."""

    def ipt_chains(self, attachment: Attachment) -> set[str]:
        """The attachment's own chains (dropped on DEL when empty)."""

    def ipt_drop_shared(self, session: Session) -> None:
        """After a removal: drop the feature's shared chains when no attachment uses them."""

    def ipt_ours(self, names: Iterable[str], strict: bool) -> bool:
        """Whether chain ``names`` of :attr:`ipt_table` show rules of ours (``strict``: the
        shared chains exist, not only leftovers of one attachment)."""
