"""portmap's configuration -> :class:`PortmapPlan`, validated before anything is installed.

Option conflicts follow the reference: ``externalSetMarkChain`` excludes ``markMasqBit``
and belongs to iptables; condition tokens are iptables syntax when the first starts with
``-`` or ``!``, else nft syntax. Without an explicit ``backend``, those options pick the
backend they belong to; with a contradicting explicit backend they are an error.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping

from . import conditions
from .backend import IPTABLES, NFTABLES, validate_name
from .identity import Attachment
from .plan import (
    PortmapPlan,
    attachment_ips,
    bad,
    check_host_ip_families,
    parse_bool,
    parse_port_mappings,
    parse_str_list,
)

TYPE_CHECKING = False  # typing costs ~5 ms per standalone CNI call; mypy treats this name as True
if TYPE_CHECKING:
    from typing import Any


def parse(
    config: Mapping[str, Any], runtime_config: Mapping[str, Any], prev_result: Any, attachment: Attachment
) -> tuple[PortmapPlan, str | None]:
    """The plan and the backend the config asks for (None: detect)."""
    backend = validate_name(config.get("backend"))
    snat = parse_bool(config, "snat", True)
    masq_all = parse_bool(config, "masqAll", False)
    external = config.get("externalSetMarkChain")
    if external is not None and (not isinstance(external, str) or not external):
        raise bad("externalSetMarkChain", "expected a chain name")
    mark_raw = config.get("markMasqBit")
    if external and mark_raw is not None:
        raise bad("externalSetMarkChain", "cannot be combined with markMasqBit")
    if external and backend == NFTABLES:
        raise bad("externalSetMarkChain", 'is iptables-only and cannot be used with backend "nftables"')
    mark_bit = 13
    if mark_raw is not None:
        if isinstance(mark_raw, bool) or not isinstance(mark_raw, int) or not 0 <= mark_raw <= 31:
            raise bad("markMasqBit", f"{mark_raw!r} is not an integer in 0-31")
        mark_bit = mark_raw
    cond4 = parse_str_list(config, "conditionsV4")
    cond6 = parse_str_list(config, "conditionsV6")
    implied: set[str] = {IPTABLES} if external else set()
    for name, toks in (("conditionsV4", cond4), ("conditionsV6", cond6)):
        syn = conditions.syntax(toks)
        if syn is None:
            continue
        if backend is not None and syn != backend:
            raise bad(name, f"{syn} syntax cannot be used with backend {backend!r}")
        implied.add(syn)
        if syn == NFTABLES:
            conditions.nft_matches(toks, name)  # validate now, not at install time
    if len(implied) > 1:
        raise bad("conditionsV4", "options of both backends given (iptables and nftables)")
    if backend is None and implied:
        backend = implied.pop()
    mappings = parse_port_mappings(runtime_config.get("portMappings"))
    ips = attachment_ips(prev_result, attachment.ifname)
    first4, first6 = ips.first(4), ips.first(6)
    v4 = first4 if isinstance(first4, ipaddress.IPv4Interface) else None
    v6 = first6 if isinstance(first6, ipaddress.IPv6Interface) else None
    if mappings:
        check_host_ip_families(mappings, {ip.version for ip in (v4, v6) if ip is not None})
    plan = PortmapPlan(
        attachment,
        mappings,
        v4,
        v6,
        snat=snat,
        masq_all=masq_all,
        mark_bit=mark_bit,
        external_mark_chain=external or None,
        conditions_v4=cond4,
        conditions_v6=cond6,
    )
    return plan, backend
