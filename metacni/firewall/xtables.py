"""What can be known about x_tables without python-iptables (150 ms to import).

Backend detection and DEL's "may iptables hold rules of ours" probe start here, so a node
on nftables never imports ``iptc``.
"""

from __future__ import annotations

from .plan import FORWARD, MASQ, PORTMAP

XTABLES_LOCK = "/run/xtables.lock"
#: the x_table each feature's rules live in
TABLE_OF = {PORTMAP: "nat", MASQ: "nat", FORWARD: "filter"}


def tables_present(version: int) -> set[str]:
    """x_tables instantiated in the calling thread's netns (reading them would create them)."""
    name = "ip_tables_names" if version == 4 else "ip6_tables_names"
    try:
        with open(f"/proc/thread-self/net/{name}") as fh:
            return {line.strip() for line in fh if line.strip()}
    except OSError:
        return set()


def may_hold(kind: str) -> bool:
    """False when no x_table that could hold ``kind`` rules exists here (no import, no lock)."""
    table = TABLE_OF[kind]
    return table in tables_present(4) or table in tables_present(6)
