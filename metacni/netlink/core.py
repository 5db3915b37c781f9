"""Netlink framing and the one socket every netlink user shares: header, attributes, send/ack.

Pure encoders and decoders (``struct``, no I/O) plus :class:`Socket`, whose :meth:`Socket.batch`
is the only send/ack loop in metacni: a single request, a pipelined batch of rtnetlink
requests and an nf_tables transaction (a batch framed by BEGIN/END messages) all go through it;
:meth:`Socket.dump` reads multi-part answers until NLMSG_DONE.

Layout reminders (native-endian, attributes 4-byte aligned): nlmsghdr ``len u32, type u16,
flags u16, seq u32, pid u32``; nlattr ``len u16, type u16`` then the payload. Why our own
codec and not pyroute2: docs/design/1701-own-netlink-codec.md.
"""

from __future__ import annotations

import errno
import fcntl
import os
import socket
import struct
from collections.abc import Iterator, Sequence

# ---------------------------------------------------------------------- constants
NETLINK_ROUTE, NETLINK_NETFILTER = 0, 12
NLMSG_NOOP, NLMSG_ERROR, NLMSG_DONE = 1, 2, 3
NLM_F_REQUEST, NLM_F_MULTI, NLM_F_ACK, NLM_F_ECHO = 0x1, 0x2, 0x4, 0x8
NLM_F_ROOT, NLM_F_MATCH, NLM_F_DUMP = 0x100, 0x200, 0x300
NLM_F_REPLACE, NLM_F_EXCL, NLM_F_CREATE, NLM_F_APPEND = 0x100, 0x200, 0x400, 0x800
NLM_F_CAPPED, NLM_F_ACK_TLVS = 0x100, 0x200  # on NLMSG_ERROR
NLA_F_NESTED = 0x8000
SOL_NETLINK = 270
NETLINK_CAP_ACK, NETLINK_EXT_ACK = 10, 11
NLMSGERR_ATTR_MSG = 1
SIOCGSKNS = 0x894C  # ioctl: an fd of the netns a socket lives in (Linux 4.9+)
RECV_SIZE = 1 << 16  # kernel dump chunks are at most 32 KiB
#: below this a batch always fits a fresh socket's send buffer (net.core.wmem_default is ~208 KiB)
SNDBUF_DEFAULT = 64 * 1024
SO_SNDBUFFORCE = 32  # not in Python's socket module

NLMSGHDR = struct.Struct("=IHHII")
NLATTR = struct.Struct("=HH")
NLMSGERR = struct.Struct("=i")
_U32 = struct.Struct("=I")

Attrs = dict[int, bytes]
Request = tuple[int, int, bytes]  # (message type, extra flags, body)


# ---------------------------------------------------------------------- encoding
def attr(kind: int, payload: bytes) -> bytes:
    """One attribute, padded to 4 bytes."""
    length = NLATTR.size + len(payload)
    return NLATTR.pack(length, kind) + payload + b"\0" * (-length & 3)


def nested(kind: int, *parts: bytes) -> bytes:
    return attr(kind | NLA_F_NESTED, b"".join(parts))


def u8(kind: int, value: int) -> bytes:
    return attr(kind, bytes((value,)))


def u32(kind: int, value: int) -> bytes:
    """A native-endian u32 (rtnetlink); netfilter's are big-endian (:func:`be32`)."""
    return attr(kind, _U32.pack(value))


def be32(kind: int, value: int) -> bytes:
    """A big-endian 32-bit attribute; negative values (verdict codes) as two's complement."""
    return attr(kind, struct.pack(">i" if value < 0 else ">I", value))


def string(kind: int, value: str) -> bytes:
    return attr(kind, value.encode() + b"\0")


def message(mtype: int, flags: int, seq: int, body: bytes) -> bytes:
    """One netlink message, padded so that the next one in the same send starts aligned."""
    return NLMSGHDR.pack(NLMSGHDR.size + len(body), mtype, flags, seq, 0) + body + b"\0" * (-len(body) & 3)


# ---------------------------------------------------------------------- decoding
def messages(data: bytes) -> Iterator[tuple[int, int, int, bytes]]:
    """(type, flags, seq, payload) for each netlink message in one datagram."""
    offset = 0
    while offset + NLMSGHDR.size <= len(data):
        length, mtype, flags, seq, _pid = NLMSGHDR.unpack_from(data, offset)
        if length < NLMSGHDR.size:
            return
        yield mtype, flags, seq, data[offset + NLMSGHDR.size:offset + length]
        offset += (length + 3) & ~3


def parse_attrs(data: bytes, offset: int = 0) -> Attrs:
    """type -> payload (flags bits stripped; the last occurrence wins)."""
    out: Attrs = {}
    end = len(data)
    while offset + NLATTR.size <= end:
        alen, akind = NLATTR.unpack_from(data, offset)
        if alen < NLATTR.size:
            break
        out[akind & 0x3FFF] = data[offset + NLATTR.size:offset + alen]
        offset += (alen + 3) & ~3
    return out


def error_code(payload: bytes) -> int:
    """The errno of an NLMSG_ERROR payload (0 for an ack)."""
    return -NLMSGERR.unpack_from(payload)[0]


def get_u32(attrs: Attrs, kind: int) -> int | None:
    raw = attrs.get(kind)
    return _U32.unpack_from(raw)[0] if raw is not None and len(raw) >= 4 else None


def get_str(attrs: Attrs, kind: int) -> str | None:
    raw = attrs.get(kind)
    return raw.split(b"\0", 1)[0].decode(errors="replace") if raw is not None else None


def ack_detail(payload: bytes, flags: int) -> str:
    """The kernel's extended-ack message of an NLMSG_ERROR, when it sent one."""
    if not flags & NLM_F_ACK_TLVS:
        return ""
    # a capped error carries only the request's header, else the whole request
    skip = NLMSGHDR.size if flags & NLM_F_CAPPED else (NLMSGHDR.unpack_from(payload, NLMSGERR.size)[0]
                                                       if len(payload) >= NLMSGERR.size + NLMSGHDR.size else 0)
    return get_str(parse_attrs(payload, NLMSGERR.size + skip), NLMSGERR_ATTR_MSG) or ""


# ---------------------------------------------------------------------- errors
class NetlinkError(OSError):
    """A netlink request failed; ``errno`` (and ``code``, as pyroute2 names it) is the errno."""

    @property
    def code(self) -> int:
        return int(self.errno or 0)


def error(code: int, what: str, detail: str = "") -> NetlinkError:
    """``what: strerror (the kernel's extended-ack text)``."""
    text = os.strerror(code) + (f" ({detail})" if detail else "")
    return NetlinkError(code, f"{what}: {text}" if what else text)


def is_errno(exc: BaseException, *codes: int) -> bool:
    """True when ``exc`` is a netlink (ours or pyroute2's) or OS error carrying one of ``codes``."""
    code = getattr(exc, "errno", None)
    if code is None:
        code = getattr(exc, "code", None)
    return code in codes


EEXIST = errno.EEXIST
ENODEV = errno.ENODEV
ENOENT = errno.ENOENT
ESRCH = errno.ESRCH
EADDRNOTAVAIL = errno.EADDRNOTAVAIL
EOPNOTSUPP = errno.EOPNOTSUPP


# ---------------------------------------------------------------------- the socket
class Socket:
    """A netlink socket of one ``protocol``, in the netns of the thread that opened it.

    A netlink socket keeps the namespace it was created in, so opening one right after
    :func:`metacni.kernel.netns.enter` gives a handle on the pod's namespace without
    touching other threads. Not thread safe: one user at a time.
    """

    def __init__(self, protocol: int) -> None:
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, protocol)
        try:
            self.sock.setsockopt(SOL_NETLINK, NETLINK_CAP_ACK, 1)  # acks without a copy of the request
            self.sock.setsockopt(SOL_NETLINK, NETLINK_EXT_ACK, 1)  # ...but with the kernel's reason
        except OSError:
            pass
        self.sock.bind((0, 0))
        self._seq = 0

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> Socket:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def fileno(self) -> int:
        return self.sock.fileno()

    def netns_fd(self) -> int:
        """A new fd of the network namespace this socket lives in (the caller closes it)."""
        return fcntl.ioctl(self.sock.fileno(), SIOCGSKNS)

    def _next_seq(self) -> int:
        self._seq = (self._seq + 1) & 0xFFFFFFFF or 1
        return self._seq

    # ------------------------------------------------------------------ requests
    def batch(self, requests: Sequence[Request], what: Sequence[str] = (), *,
              frame: tuple[Request, Request] | None = None) -> list[list[bytes] | NetlinkError]:
        """Send every request in one ``send``, then read all the answers.

        Returns, per request, its reply payloads (a GET's answer; [] for a change) or the
        NetlinkError it failed with (``what[i]: strerror (extended ack)``). Without ``frame``
        every request carries NLM_F_ACK and the kernel runs them in order and keeps going after
        a failure, so only batch requests whose later members make sense whatever the earlier
        ones did. ``frame`` (begin, end) wraps them in one transaction (nfnetlink's
        BATCH_BEGIN/END): it applies all or nothing, and once one failed the others report
        ECANCELED. In a transaction only the last request asks for an acknowledgement: the
        kernel reports every failure anyway, and an acknowledgement per request (a few hundred
        in a transaction of many map elements) overflows the socket's receive buffer; the kernel
        drops what does not fit, and the call waited forever for it. Dumps cannot be batched:
        use :meth:`dump`.
        """
        seqs: list[int] = []
        parts: list[bytes] = []
        if frame is not None:
            parts.append(message(frame[0][0], NLM_F_REQUEST | frame[0][1], self._next_seq(), frame[0][2]))
        for i, (mtype, flags, body) in enumerate(requests):
            seq = self._next_seq()
            seqs.append(seq)
            ack = NLM_F_ACK if frame is None or i == len(requests) - 1 else 0
            parts.append(message(mtype, NLM_F_REQUEST | ack | flags, seq, body))
        if frame is not None:
            parts.append(message(frame[1][0], NLM_F_REQUEST | frame[1][1], self._next_seq(), frame[1][2]))
        data = b"".join(parts)
        if len(data) > SNDBUF_DEFAULT:
            self._fit_sndbuf(len(data))
        self.sock.sendall(data)
        replies: dict[int, list[bytes] | NetlinkError] = {seq: [] for seq in seqs}
        waiting = set(seqs) if frame is None else set(seqs[-1:])
        failed = False
        while waiting and not (failed and frame is not None):
            for mtype, mflags, mseq, payload in messages(self.sock.recv(RECV_SIZE)):
                if mseq not in replies:
                    continue
                if mtype == NLMSG_ERROR:
                    waiting.discard(mseq)
                    code = error_code(payload)
                    if code:
                        i = seqs.index(mseq)
                        replies[mseq] = error(code, what[i] if i < len(what) else "", ack_detail(payload, mflags))
                        failed = True
                elif mtype != NLMSG_NOOP:
                    out = replies[mseq]
                    if isinstance(out, list):
                        out.append(payload)
        if waiting:  # an aborted transaction acknowledges nothing after its error
            self._drain()
            for seq in waiting:
                i = seqs.index(seq)
                replies[seq] = error(errno.ECANCELED, what[i] if i < len(what) else "", "transaction aborted")
        return [replies[seq] for seq in seqs]

    def _fit_sndbuf(self, size: int) -> None:
        """A netlink message (a whole transaction) must fit the send buffer in one piece (else
        EMSGSIZE): grow it, past ``net.core.wmem_max`` when root (as libnftables does)."""
        if self.sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF) >= size + 4096:
            return
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, SO_SNDBUFFORCE, size)
        except OSError:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, size)

    def request(self, req: Request, what: str = "") -> list[bytes]:
        """One request; raises NetlinkError on failure."""
        (out,) = self.batch([req], [what])
        if isinstance(out, NetlinkError):
            raise out
        return out

    def dump(self, req: Request, what: str = "dump") -> list[bytes]:
        """Every payload of a dump request (NLM_F_DUMP), until NLMSG_DONE."""
        mtype, flags, body = req
        seq = self._next_seq()
        self.sock.sendall(message(mtype, NLM_F_REQUEST | NLM_F_DUMP | flags, seq, body))
        out: list[bytes] = []
        while True:
            for rtype, rflags, rseq, payload in messages(self.sock.recv(RECV_SIZE)):
                if rseq != seq:
                    continue
                if rtype == NLMSG_DONE:
                    return out
                if rtype == NLMSG_ERROR:
                    code = error_code(payload)
                    if code:
                        raise error(code, what, ack_detail(payload, rflags))
                    continue
                out.append(payload)

    def _drain(self) -> None:
        """Drop late replies so the next request reads its own (netlink answers synchronously:
        they are all queued by the time ``send`` returned)."""
        try:
            while True:
                self.sock.recv(RECV_SIZE, socket.MSG_DONTWAIT)
        except BlockingIOError:
            pass
