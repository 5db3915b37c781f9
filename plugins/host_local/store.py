"""The on-disk lease store, byte-compatible with the reference host-local.

Layout of ``<dataDir>/<network>/``: one file per leased address, named by the address
(IPv6 compressed), holding ``<containerID>\\r\\n<ifname>`` with no trailing newline (older
files hold only the container id); ``last_reserved_ip.<N>`` with the last address handed
out from range set N; and an empty ``lock`` file that every host-local -- ours or the
reference binary -- flocks for the whole of an allocation or release. A lease is written to a
temporary name and then linked into place (fails if taken), so no reader ever sees a
half-written lease; ``last_reserved_ip.<N>`` is overwritten in place under the lock.
"""

from __future__ import annotations

import contextlib
import fcntl
import ipaddress
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from .ranges import IPAddress

LINE_BREAK = "\r\n"
LOCK_NAME = "lock"
LAST_RESERVED_PREFIX = "last_reserved_ip."
TMP_PREFIX = ".tmp-"


@dataclass(frozen=True)
class Lease:
    ip: IPAddress
    container_id: str
    ifname: str | None  # None: a legacy file holding only the container id

    def owned_by(self, container_id: str, ifname: str) -> bool:
        if self.ifname is None:
            return self.container_id == container_id.strip()
        return self.container_id == container_id.strip() and self.ifname == ifname


def render_lease(container_id: str, ifname: str) -> str:
    return f"{container_id.strip()}{LINE_BREAK}{ifname}"


def parse_lease(text: str) -> tuple[str, str | None]:
    """(container id, ifname or None) from a lease file's text, trimmed as Go does."""
    body = text.strip()
    cid, sep, ifname = body.partition(LINE_BREAK)
    return (cid, ifname) if sep else (body, None)


def lease_ip(name: str) -> IPAddress | None:
    """The address a file name stands for, or None for lock/last_reserved/temp files."""
    try:
        ip = ipaddress.ip_address(name)
    except ValueError:
        return None
    return ip if str(ip) == name else None


class Store:
    """Leases of one network. Mutating methods must run inside :meth:`locked`."""

    def __init__(self, data_dir: str | os.PathLike[str], network: str) -> None:
        self.dir = Path(data_dir, network)

    @contextlib.contextmanager
    def locked(self, create: bool = True) -> Iterator[bool]:
        """Hold the flock on ``<dir>/lock``; yields False (no lock) when the directory is
        absent and ``create`` is False, so DEL of a never-used network creates nothing."""
        if not self.dir.is_dir():
            if not create:
                yield False
                return
            self.dir.mkdir(mode=0o755, parents=True, exist_ok=True)
        fd = os.open(self.dir / LOCK_NAME, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o750)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield True
        finally:
            os.close(fd)  # closing the last descriptor drops the flock

    def _path(self, name: str) -> Path:
        return self.dir / name

    def _write_tmp(self, content: str) -> Path:
        tmp = self._path(f"{TMP_PREFIX}{os.urandom(16).hex()}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        try:
            os.write(fd, content.encode())
        finally:
            os.close(fd)
        return tmp

    def reserve(self, ip: IPAddress, container_id: str, ifname: str, range_set: int) -> bool:
        """Lease ``ip``; False when its file already exists (someone holds it)."""
        tmp = self._write_tmp(render_lease(container_id, ifname))
        try:
            os.link(tmp, self._path(str(ip)))
        except FileExistsError:
            return False
        finally:
            tmp.unlink()
        self.set_last_reserved(range_set, ip)
        return True

    def release(self, ip: IPAddress) -> None:
        self._path(str(ip)).unlink(missing_ok=True)

    def set_last_reserved(self, range_set: int, ip: IPAddress) -> None:
        """Overwritten in place, like the reference: every reader holds the lock, and a write
        cut short by a crash only moves where the next scan starts. Not by rename: on ext4,
        renaming (or truncating to zero) over an existing file forces the new data's block
        allocation (``auto_da_alloc``), an order of magnitude dearer than an overwrite that
        shrinks the file with ``ftruncate`` (figures: bench/README.md)."""
        data = str(ip).encode()
        fd = os.open(self._path(f"{LAST_RESERVED_PREFIX}{range_set}"), os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            os.pwrite(fd, data, 0)
            os.ftruncate(fd, len(data))
        finally:
            os.close(fd)

    def last_reserved(self, range_set: int) -> IPAddress | None:
        try:
            text = self._path(f"{LAST_RESERVED_PREFIX}{range_set}").read_text()
            return ipaddress.ip_address(text.strip())
        except (OSError, ValueError):
            return None  # unreadable or garbage: lose round-robin once, as the reference does

    def _read_all(self) -> Iterator[tuple[str, bytes]]:
        """(file name, content) of every file that may be a lease. Raw ``os`` calls: ``open()``
        is dearer per file (figures: bench/README.md), and ADD and DEL both scan."""
        try:
            entries = os.scandir(self.dir)
        except FileNotFoundError:
            return
        with entries:
            for entry in entries:
                name = entry.name
                if name.startswith((".", LOCK_NAME, LAST_RESERVED_PREFIX)):
                    continue
                try:
                    fd = os.open(entry.path, os.O_RDONLY | os.O_CLOEXEC)
                except OSError:
                    continue  # released meanwhile
                try:
                    data = os.read(fd, 4096)
                except OSError:
                    continue
                finally:
                    os.close(fd)
                yield name, data

    def leases(self) -> Iterator[Lease]:
        for name, data in self._read_all():
            ip = lease_ip(name)
            if ip is not None:
                cid, ifname = parse_lease(data.decode("utf-8", "replace"))
                yield Lease(ip=ip, container_id=cid, ifname=ifname)

    def find(self, container_id: str, ifname: str) -> list[Lease]:
        wanted = container_id.strip().encode()
        found = []
        for name, data in self._read_all():
            if wanted not in data:
                continue  # cheap reject before parsing the name and the text
            ip = lease_ip(name)
            if ip is None:
                continue
            cid, lease_ifname = parse_lease(data.decode("utf-8", "replace"))
            lease = Lease(ip=ip, container_id=cid, ifname=lease_ifname)
            if lease.owned_by(container_id, ifname):
                found.append(lease)
        return found
