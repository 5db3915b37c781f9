"""What can be known about x_tables without python-iptables (a heavy import), and the
iptables rule layouts the feature modules describe (token lists, no ``iptc``).

Backend detection and DEL's "may iptables hold rules of ours" probe start here, so a node
on nftables never imports ``iptc``.
"""

from __future__ import annotations

from pathlib import Path

XTABLES_LOCK = Path("/run/xtables.lock")


class Spec:
    """One rule as the argv an operator would type, in ``table``/``chain``; ``insert`` puts it
    first. ``source`` names the config field user tokens in it came from (for errors)."""

    __slots__ = ("chain", "insert", "source", "table", "tokens")

    def __init__(self, table: str, chain: str, tokens: list[str], insert: bool = False, source: str = "rule") -> None:
        self.table, self.chain, self.tokens, self.insert, self.source = table, chain, tokens, insert, source

    def __repr__(self) -> str:
        return f"Spec({self.table!r}, {self.chain!r}, {self.tokens!r}, insert={self.insert})"


class Layout:
    """What one family of a plan needs: chains, shared rules (idempotent), owned rules."""

    __slots__ = ("chains", "owned", "shared")

    def __init__(self) -> None:
        self.chains: list[tuple[str, str]] = []
        self.shared: list[Spec] = []
        self.owned: list[Spec] = []


def comment(text: str) -> list[str]:
    return ["-m", "comment", "--comment", text]


def tables_present(version: int) -> set[str]:
    """x_tables instantiated in the calling thread's netns (reading them would create them)."""
    name = "ip_tables_names" if version == 4 else "ip6_tables_names"
    try:
        lines = Path("/proc/thread-self/net", name).read_text().splitlines()
    except OSError:
        return set()
    return {line.strip() for line in lines if line.strip()}


def may_hold(table: str) -> bool:
    """False when no x_table ``table`` exists here (no import, no lock)."""
    return table in tables_present(4) or table in tables_present(6)
