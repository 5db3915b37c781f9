"""Accept forwarded traffic to and from a pod's addresses (nodes with FORWARD policy DROP)."""

from __future__ import annotations

from . import backend as _backend
from .identity import Attachment
from .plan import FORWARD, ForwardPlan, parse_addresses


def add_forward(
    network: str, container_id: str, ifname: str, addresses: list[str], *, backend: str | None = None
) -> None:
    _backend.validate_name(backend)
    plan = ForwardPlan(Attachment(network, container_id, ifname), parse_addresses(addresses))
    if not plan.addresses:
        del_forward(network, container_id, ifname, backend=backend)
        return
    _backend.add(plan, backend)


def del_forward(network: str, container_id: str, ifname: str, *, backend: str | None = None) -> None:
    _backend.delete(Attachment(network, container_id, ifname), FORWARD, backend)
