"""pyroute2, explicitly, for what our codec does not speak (bridge VLAN filtering).

:func:`iproute` opens a pyroute2 ``IPRoute`` in the netns of one of our sockets and turns its
errors into :class:`~metacni.netlink.core.NetlinkError`. Only this module imports pyroute2
(~290 ms and ~20 MiB): a pod path that never needs it never pays for it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from metacni.netlink.core import NetlinkError, Socket

from .netns import _setns, current_netns_path

if TYPE_CHECKING:
    from pyroute2 import IPRoute


@contextmanager
def iproute(sock: Socket) -> Iterator[IPRoute]:
    """A pyroute2 ``IPRoute`` in ``sock``'s netns for the block; its failures raise NetlinkError."""
    from pyroute2 import IPRoute
    from pyroute2.netlink.exceptions import NetlinkError as Pyroute2Error

    target = sock.netns_fd()
    origin = os.open(current_netns_path(), os.O_RDONLY | os.O_CLOEXEC)
    try:
        _setns(target)
        try:
            ipr = IPRoute()  # its socket stays in the netns it was opened in
        finally:
            _setns(origin)
    finally:
        os.close(target)
        os.close(origin)
    try:
        yield ipr
    except Pyroute2Error as exc:
        raise NetlinkError(exc.code, f"pyroute2: {os.strerror(exc.code)}") from exc
    finally:
        ipr.close()
