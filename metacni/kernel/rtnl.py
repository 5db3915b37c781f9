"""rtnetlink sockets bound to the calling thread's network namespace.

A netlink socket keeps the namespace it was created in, so opening one right after
:func:`metacni.kernel.netns.enter` gives a handle on the pod's namespace without touching
other threads. pyroute2's ``NetlinkError`` is translated into errno checks here so callers
never import pyroute2 internals.
"""

from __future__ import annotations

import errno
from collections.abc import Iterator
from contextlib import contextmanager

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

__all__ = ["IPRoute", "NetlinkError", "is_errno", "rtnl"]


@contextmanager
def rtnl() -> Iterator[IPRoute]:
    """An rtnetlink socket in the calling thread's current netns, closed after the block."""
    ipr = IPRoute()
    try:
        yield ipr
    finally:
        ipr.close()


def is_errno(exc: BaseException, *codes: int) -> bool:
    """True when ``exc`` is a netlink (or OS) error carrying one of ``codes``."""
    code = getattr(exc, "code", None) if isinstance(exc, NetlinkError) else getattr(exc, "errno", None)
    return code in codes


EEXIST = errno.EEXIST
ENODEV = errno.ENODEV
ENOENT = errno.ENOENT
ESRCH = errno.ESRCH
EADDRNOTAVAIL = errno.EADDRNOTAVAIL
EOPNOTSUPP = errno.EOPNOTSUPP
