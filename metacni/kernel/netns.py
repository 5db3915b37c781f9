"""Network namespaces: enter one for the calling thread only.

setns(2) changes the namespace of the calling *thread*, and Python threads are OS threads,
so a daemon can serve pods in parallel: each worker thread enters its pod's namespace, does
its netlink work and comes back. Sockets keep the namespace they were created in.
"""

from __future__ import annotations

import ctypes
import fcntl
import os
import stat
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from metacni.spec.errors import CNIError, Code

CLONE_NEWNET = 0x40000000
def _load_libc() -> ctypes.CDLL:
    # libc.so.6 on every glibc system; find_library (it runs ldconfig) only for others.
    try:
        return ctypes.CDLL("libc.so.6", use_errno=True)
    except OSError:
        from ctypes.util import find_library

        return ctypes.CDLL(find_library("c"), use_errno=True)


_libc = _load_libc()


def _setns(fd: int) -> None:
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


def current_netns_path() -> str:
    return f"/proc/self/task/{threading.get_native_id()}/ns/net"


def exists(path: str) -> bool:
    return bool(path) and os.path.exists(path)


NS_GET_NSTYPE = 0xB703  # _IO(0xb7, 0x3), Linux 4.11


def is_netns(path: str) -> bool:
    """True when ``path`` opens a live network namespace (a runtime's bind mount under
    /run/netns, or /proc/<pid>/ns/net of a running process): a sandbox that still exists. A
    missing path, a plain file left behind by an unmount, or another kind of namespace: False."""
    try:
        # Only a regular file is opened: a namespace file is one, and opening a device or a
        # FIFO someone left at that path could have effects of its own.
        if not path or not stat.S_ISREG(os.stat(path).st_mode):
            return False
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK | os.O_NOCTTY)
    except OSError:
        return False
    try:
        return fcntl.ioctl(fd, NS_GET_NSTYPE) == CLONE_NEWNET
    except OSError:
        return False
    finally:
        os.close(fd)


@contextmanager
def enter(path: str) -> Iterator[None]:
    """Run the block with the calling thread inside the netns at ``path``.

    A missing or non-netns path is a CNIError naming the path; the thread always returns to
    its original namespace.
    """
    try:
        target = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as exc:
        raise CNIError(Code.INVALID_ENVIRONMENT, "cannot open network namespace",
                       f"CNI_NETNS {path!r}: {exc.strerror}") from None
    origin = os.open(current_netns_path(), os.O_RDONLY | os.O_CLOEXEC)
    try:
        try:
            _setns(target)
        except OSError as exc:
            raise CNIError(Code.INVALID_ENVIRONMENT, "cannot enter network namespace",
                           f"CNI_NETNS {path!r}: {exc.strerror}") from None
        try:
            yield
        finally:
            _setns(origin)
    finally:
        os.close(target)
        os.close(origin)


def same_as_current(path: str) -> bool:
    """True when ``path`` is the calling thread's own netns (skel's code 8 check)."""
    try:
        a, b = os.stat(path), os.stat(current_netns_path())
    except OSError:
        return False
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)
