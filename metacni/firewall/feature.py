"""Features by kind: the one lookup from a kind (``portmap``, ``masq``, ``forward``) to the
module holding that feature's nftables and iptables layouts (:class:`.protocol.Feature`).

The engines never switch on a kind: they ask the feature. A feature module is imported on
first use, so a masq call does not load portmap's layouts.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from .plan import FORWARD, MASQ, PORTMAP

if TYPE_CHECKING:
    from typing import Any

    from .protocol import Feature

#: kind -> module whose ``FEATURE`` implements it
MODULES = {PORTMAP: "metacni.firewall.portmap", MASQ: "metacni.firewall.masq", FORWARD: "metacni.firewall.forward"}
KINDS = tuple(MODULES)


def of(kind: str) -> Feature[Any]:
    """The feature of ``kind`` (KeyError for an unknown kind: a programming error)."""
    feature: Feature[Any] = importlib.import_module(MODULES[kind]).FEATURE
    return feature


def nft_tables() -> set[str]:
    """Every feature's nftables table (ours, never foreign)."""
    return {of(kind).nft_table for kind in KINDS}
