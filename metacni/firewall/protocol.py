"""The interface both firewall backends implement (``metacni.plugin.FirewallBackend``).

A module of its own because ``Protocol`` needs ``typing``, which a standalone CNI call does
not import otherwise: :mod:`.backend` hands it out on first access only.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from .identity import Attachment
    from .plan import Plan


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
