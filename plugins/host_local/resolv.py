"""resolv.conf parsing for ``ipam.resolvConf`` (the reference plugin's line rules)."""

from __future__ import annotations

from metacni.plugin import DNS


def parse_resolv_conf(text: str) -> DNS:
    """nameserver/domain/search/options lines; comments (# ;) and short lines skipped;
    the last ``domain`` wins, search and options accumulate."""
    nameservers: list[str] = []
    search: list[str] = []
    options: list[str] = []
    domain: str | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        fields = line.split()
        if len(fields) < 2:
            continue
        key, rest = fields[0], fields[1:]
        if key == "nameserver":
            nameservers.append(rest[0])
        elif key == "domain":
            domain = rest[0]
        elif key == "search":
            search.extend(rest)
        elif key == "options":
            options.extend(rest)
    return DNS(nameservers=nameservers or None, domain=domain, search=search or None,
               options=options or None)
