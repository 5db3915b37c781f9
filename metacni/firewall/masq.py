"""Masquerade for pod traffic leaving its own subnets: the API bridge's ``ipMasq`` calls.

Both functions run in the calling thread's network namespace (the node's).
"""

from __future__ import annotations

from collections.abc import Sequence

from . import backend as _backend
from .identity import Attachment
from .plan import MASQ, MasqPlan, parse_addresses, parse_cidrs


def add_masquerade(
    network: str,
    container_id: str,
    ifname: str,
    addresses: list[str],
    *,
    backend: str | None = None,
    non_masquerade_cidrs: Sequence[str] = (),
) -> None:
    """Masquerade ``addresses`` (``ip/prefix``) towards anything outside their subnets and
    ``non_masquerade_cidrs``. Replaces the attachment's earlier masquerade rules."""
    _backend.validate_name(backend)
    plan = MasqPlan(
        Attachment(network, container_id, ifname),
        parse_addresses(addresses, "addresses"),
        parse_cidrs(list(non_masquerade_cidrs), "nonMasqueradeCIDRs"),
    )
    if not plan.addresses:
        del_masquerade(network, container_id, ifname, backend=backend)
        return
    _backend.add(plan, backend)


def del_masquerade(network: str, container_id: str, ifname: str, *, backend: str | None = None) -> None:
    """Remove the attachment's masquerade rules. Idempotent; needs no addresses."""
    _backend.delete(Attachment(network, container_id, ifname), MASQ, backend)
