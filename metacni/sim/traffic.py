"""Traffic probes between network namespaces, in-process: ICMP echo, TCP/UDP echo services.

Every probe runs in a thread entered into the source namespace (sockets keep the namespace they
were created in), so nothing depends on ``ping``/``nc`` and one process can serve and probe
many namespaces at once. Waits are socket timeouts on the condition itself, bounded by
deadlines; nothing sleeps. Used by tests, e2e/ and ``metacni demo``.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import socket
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from metacni.kernel.netns import enter

T = TypeVar("T")


def in_netns(path: str, fn: Callable[[], T]) -> T:
    """Run ``fn`` in a fresh thread entered into ``path``; re-raise what it raised."""
    box: dict[str, object] = {}

    def body() -> None:
        try:
            with enter(path):
                box["value"] = fn()
        except BaseException as exc:  # noqa: BLE001 - handed back to the caller
            box["error"] = exc

    t = threading.Thread(target=body)
    t.start()
    t.join()
    if "error" in box:
        raise box["error"]  # type: ignore[misc]
    return box["value"]  # type: ignore[return-value]


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    total = (total >> 16) + (total & 0xFFFF)
    total += total >> 16
    return ~total & 0xFFFF


def ping(src_netns: str, dst: str, timeout: float = 5.0) -> bool:
    """One ICMP(v6) echo from inside ``src_netns``; True when the reply came back in time.

    Resends every 200 ms until the deadline, so neighbour resolution on a fresh link does
    not make the probe flaky.
    """
    ip = ipaddress.ip_address(dst)

    def probe() -> bool:
        fam, proto, req, rep = ((socket.AF_INET, socket.IPPROTO_ICMP, 8, 0) if ip.version == 4
                                else (socket.AF_INET6, socket.IPPROTO_ICMPV6, 128, 129))
        ident = os.getpid() & 0xFFFF
        with socket.socket(fam, socket.SOCK_RAW, proto) as s:
            deadline = time.monotonic() + timeout
            seq = 0
            while time.monotonic() < deadline:
                seq += 1
                header = struct.pack("!BBHHH", req, 0, 0, ident, seq)
                payload = b"metacni"
                csum = _checksum(header + payload) if ip.version == 4 else 0  # kernel fills v6
                s.sendto(struct.pack("!BBHHH", req, 0, csum, ident, seq) + payload, (dst, 0))
                resend_at = min(deadline, time.monotonic() + 0.2)
                while (left := resend_at - time.monotonic()) > 0:
                    s.settimeout(left)
                    try:
                        data, addr = s.recvfrom(2048)
                    except TimeoutError:
                        break
                    icmp = data[(data[0] & 0x0F) * 4:] if ip.version == 4 else data
                    if addr[0] == dst and icmp[0] == rep and struct.unpack("!H", icmp[4:6])[0] == ident:
                        return True
            return False

    return in_netns(src_netns, probe)


def tcp_exchange(server_netns: str, server_ip: str, client_netns: str, port: int = 7777,
                 timeout: float = 5.0) -> bytes:
    """Client in one netns sends a line to a server in another, which answers in upper case."""
    return _exchange(server_netns, server_ip, client_netns, port, timeout)[0]


def tcp_peer(server_netns: str, server_ip: str, client_netns: str, port: int = 7777,
             timeout: float = 5.0) -> str:
    """The address the server in one netns saw as the client's (in another); "" if none came."""
    return _exchange(server_netns, server_ip, client_netns, port, timeout)[1]


def _exchange(server_netns: str, server_ip: str, client_netns: str, port: int,
              timeout: float) -> tuple[bytes, str]:
    """One TCP exchange (see :func:`tcp_exchange`): the reply and the client address the server saw."""
    fam = socket.AF_INET if ipaddress.ip_address(server_ip).version == 4 else socket.AF_INET6
    listener = in_netns(server_netns, lambda: _listen(fam, server_ip, port))
    listener.settimeout(timeout)
    seen: list[str] = []

    def serve() -> None:
        try:
            conn, addr = listener.accept()
            with conn:
                seen.append(str(addr[0]))
                conn.settimeout(timeout)
                conn.sendall(conn.recv(1024).upper())
        except OSError:
            pass

    server = threading.Thread(target=serve)
    server.start()
    try:
        def client() -> bytes:
            with socket.create_connection((server_ip, port), timeout=timeout) as c:
                c.sendall(b"hello over the bridge")
                return c.recv(1024)
        reply = in_netns(client_netns, client)
    finally:
        server.join(timeout)
        listener.close()
    return reply, (seen[0] if seen else "")


def _listen(fam: int, ip: str, port: int) -> socket.socket:
    s = socket.socket(fam, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((ip, port))
    s.listen(1)
    return s


@dataclass
class EchoHub:
    """TCP and UDP listeners in many namespaces; each answers with the peer address it saw,
    which is how a probe proves (or disproves) NAT on the path."""

    sockets: list[socket.socket] = field(default_factory=list)
    threads: list[threading.Thread] = field(default_factory=list)

    def listen(self, netns_path: str, port: int, bind: str = "0.0.0.0") -> None:
        fam = socket.AF_INET6 if ":" in bind else socket.AF_INET

        def make() -> tuple[socket.socket, socket.socket]:
            t = socket.socket(fam, socket.SOCK_STREAM)
            t.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            t.bind((bind, port))
            t.listen(64)
            u = socket.socket(fam, socket.SOCK_DGRAM)
            u.bind((bind, port))
            return t, u

        tcp, udp = in_netns(netns_path, make)
        self.sockets += [tcp, udp]
        for target, sock in ((self._serve_tcp, tcp), (self._serve_udp, udp)):
            th = threading.Thread(target=target, args=(sock,), daemon=True)
            th.start()
            self.threads.append(th)

    @staticmethod
    def _serve_tcp(sock: socket.socket) -> None:
        while True:
            try:
                conn, peer = sock.accept()
            except OSError:
                return
            with conn:
                try:
                    conn.settimeout(2.0)
                    conn.recv(64)
                    conn.sendall(str(peer[0]).encode())
                except OSError:
                    pass

    @staticmethod
    def _serve_udp(sock: socket.socket) -> None:
        while True:
            try:
                _, peer = sock.recvfrom(64)
                if peer is None:  # shut down
                    return
                sock.sendto(str(peer[0]).encode(), peer)
            except OSError:
                return

    def close(self) -> None:
        for sock in self.sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        for th in self.threads:
            th.join(5.0)
        self.sockets.clear()
        self.threads.clear()

    def __enter__(self) -> EchoHub:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def ask(src_netns_path: str, proto: str, host: str, port: int, deadline: float = 8.0,
        attempt: float = 1.0) -> str | None:
    """The peer address an :class:`EchoHub` listener saw for a request from ``src_netns_path``;
    retried until ``deadline`` seconds pass (a fresh neighbour or route may take a moment),
    None when it never answered."""
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    kind = socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM

    def once() -> str | None:
        with socket.socket(fam, kind) as s:
            s.settimeout(attempt)
            try:
                if kind == socket.SOCK_STREAM:
                    s.connect((host, port))
                    s.sendall(b"hi")
                    data = s.recv(64)
                else:
                    s.sendto(b"hi", (host, port))
                    data = s.recvfrom(64)[0]
            except OSError:
                return None
            return data.decode() or None

    end = time.monotonic() + deadline
    while True:
        seen = in_netns(src_netns_path, once)
        if seen is not None or time.monotonic() >= end:
            return seen
        time.sleep(0.05)  # pacing between retries of a failed probe, not synchronisation
