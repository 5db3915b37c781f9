"""resolv.conf parsing for ``ipam.resolvConf`` (the reference plugin's line rules)."""

from __future__ import annotations

import os
import stat

from metacni.plugin import DNS

#: a resolv.conf is a few hundred bytes; more is not one (and must not fill memory)
MAX_RESOLV_CONF = 64 * 1024


def read_resolv_conf(path: str | os.PathLike[str]) -> str:
    """The text of ``path``, which must be a regular file (a FIFO or device named in a config
    never blocks or floods the plugin); at most :data:`MAX_RESOLV_CONF` bytes are read.
    Raises OSError (``strerror`` says why)."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(0, "not a regular file")
        data = os.read(fd, MAX_RESOLV_CONF + 1)
    finally:
        os.close(fd)
    if len(data) > MAX_RESOLV_CONF:
        raise OSError(0, f"larger than {MAX_RESOLV_CONF} bytes")
    return data.decode("utf-8", "replace")


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
