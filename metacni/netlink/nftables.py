"""nf_tables over netlink: ``NFT_MSG_*`` and ``NFTA_*`` by name, object messages, the rule
expression encoder and a transaction's batch framing. No libnftables, no JSON evaluation.

- Objects: :func:`chain`, :func:`element` (a verdict-map element), :func:`rule`;
  lookups: :func:`chain_use`, :func:`table_exists`; all on a
  :class:`~.core.Socket` of ``NETLINK_NETFILTER``.
- :func:`transaction` sends messages as one nf_tables batch (BATCH_BEGIN ... BATCH_END):
  the kernel applies all of it or none.
- :func:`rule` compiles libnftables JSON expressions into the netlink expressions nftables
  1.0.6 generates for them (as ``nft --debug=netlink`` prints them), including the implicit
  dependencies it adds in an ``inet`` table: ``meta nfproto`` before an ``ip``/``ip6``
  payload match, ``meta l4proto`` before a ``tcp``/``udp``/``sctp`` port match. Anything
  else raises :class:`Unsupported` and the caller uses libnftables, so a listing
  (``nft list``) cannot tell the two apart.

Netfilter attributes are big-endian; each message body starts with an nfgenmsg. Why raw
batches and not libnftables: docs/design/1701-own-netlink-codec.md.
"""

from __future__ import annotations

import errno
import ipaddress
import struct
from functools import lru_cache
from socket import AF_INET, AF_INET6, htons, inet_pton
from typing import TYPE_CHECKING

from . import core
from .core import NetlinkError, Request, Socket, attr, nested, parse_attrs, string

if TYPE_CHECKING:
    from typing import Any

# ---------------------------------------------------------------------- nf_tables.h / nfnetlink.h
NFNL_SUBSYS_NFTABLES = 10
NFNL_MSG_BATCH_BEGIN, NFNL_MSG_BATCH_END = 0x10, 0x11
NFT_MSG_NEWTABLE, NFT_MSG_GETTABLE, NFT_MSG_DELTABLE = 0, 1, 2
NFT_MSG_NEWCHAIN, NFT_MSG_GETCHAIN, NFT_MSG_DELCHAIN = 3, 4, 5
NFT_MSG_NEWRULE, NFT_MSG_GETRULE, NFT_MSG_DELRULE = 6, 7, 8
NFT_MSG_NEWSETELEM, NFT_MSG_GETSETELEM, NFT_MSG_DELSETELEM = 12, 13, 14

NFPROTO = {"inet": 1, "ip": 2, "ip6": 10, "bridge": 7}
NFPROTO_IPV4, NFPROTO_IPV6 = 2, 10

NFTA_TABLE_NAME = 1
NFTA_CHAIN_TABLE, NFTA_CHAIN_NAME, NFTA_CHAIN_USE = 1, 3, 6
NFTA_RULE_TABLE, NFTA_RULE_CHAIN, NFTA_RULE_EXPRESSIONS, NFTA_RULE_USERDATA = 1, 2, 4, 7
NFTA_SET_ELEM_LIST_TABLE, NFTA_SET_ELEM_LIST_SET, NFTA_SET_ELEM_LIST_ELEMENTS = 1, 2, 3
NFTA_SET_ELEM_KEY, NFTA_SET_ELEM_DATA = 1, 2
NFTA_LIST_ELEM = 1
NFTA_EXPR_NAME, NFTA_EXPR_DATA = 1, 2
NFTA_DATA_VALUE, NFTA_DATA_VERDICT = 1, 2
NFTA_VERDICT_CODE, NFTA_VERDICT_CHAIN = 1, 2
NFTA_CMP_SREG, NFTA_CMP_OP, NFTA_CMP_DATA = 1, 2, 3
NFTA_META_DREG, NFTA_META_KEY = 1, 2
NFTA_PAYLOAD_DREG, NFTA_PAYLOAD_BASE, NFTA_PAYLOAD_OFFSET, NFTA_PAYLOAD_LEN = 1, 2, 3, 4
NFTA_BITWISE_SREG, NFTA_BITWISE_DREG, NFTA_BITWISE_LEN, NFTA_BITWISE_MASK, NFTA_BITWISE_XOR = 1, 2, 3, 4, 5
NFTA_IMMEDIATE_DREG, NFTA_IMMEDIATE_DATA = 1, 2
NFTA_CT_DREG, NFTA_CT_KEY = 1, 2
NFTA_NAT_TYPE, NFTA_NAT_FAMILY, NFTA_NAT_REG_ADDR_MIN, NFTA_NAT_REG_PROTO_MIN, NFTA_NAT_FLAGS = 1, 2, 3, 5, 7

NFT_REG_VERDICT, NFT_REG_1, NFT_REG_2 = 0, 1, 2
NFT_CMP_EQ, NFT_CMP_NEQ = 0, 1
NFT_PAYLOAD_NETWORK_HEADER, NFT_PAYLOAD_TRANSPORT_HEADER = 1, 2
NFT_META_NFPROTO, NFT_META_L4PROTO = 15, 16
NFT_CT_STATUS = 2
NFT_NAT_DNAT = 1
NF_NAT_RANGE_PROTO_SPECIFIED = 2
NF_ACCEPT, NFT_RETURN, NFT_GOTO, NFT_JUMP = 1, -5, -4, -3
NFTNL_UDATA_RULE_COMMENT = 0  # libnftnl's udata TLV type of a rule comment

NFGENMSG = struct.Struct("=BBH")  # family, version, res_id (big-endian)
#: extra netlink flags per message type, as libnftables sends them: NLM_F_CREATE for objects
#: (no NLM_F_EXCL: adding what exists is a no-op), NLM_F_CREATE|NLM_F_APPEND for rules
_FLAGS = {NFT_MSG_NEWCHAIN: core.NLM_F_CREATE, NFT_MSG_NEWSETELEM: core.NLM_F_CREATE,
          NFT_MSG_NEWRULE: core.NLM_F_CREATE | core.NLM_F_APPEND}


def socket() -> Socket:
    """A NETLINK_NETFILTER socket in the calling thread's netns."""
    return Socket(core.NETLINK_NETFILTER)


def _header(family: str) -> bytes:
    return NFGENMSG.pack(NFPROTO[family], 0, 0)


def _msg(kind: int, body: bytes) -> Request:
    return (NFNL_SUBSYS_NFTABLES << 8) | kind, _FLAGS.get(kind, 0), body


# ---------------------------------------------------------------------- objects
def chain(op: str, family: str, table: str, name: str) -> Request:
    """``add`` (a base-less chain; a no-op when it exists) or ``delete`` a chain."""
    body = _header(family) + string(NFTA_CHAIN_TABLE, table) + string(NFTA_CHAIN_NAME, name)
    return _msg(NFT_MSG_NEWCHAIN if op == "add" else NFT_MSG_DELCHAIN, body)


def element(op: str, family: str, table: str, name: str, key: bytes, jump: str | None = None) -> Request:
    """``add`` (with a ``jump`` verdict) / ``delete`` a map element; ``key`` is the element's key
    as the kernel stores it (concatenations: each field padded to 4 bytes)."""
    elem = [nested(NFTA_SET_ELEM_KEY, attr(NFTA_DATA_VALUE, key))]
    if jump is not None:
        verdict = core.be32(NFTA_VERDICT_CODE, NFT_JUMP) + string(NFTA_VERDICT_CHAIN, jump)
        elem.append(nested(NFTA_SET_ELEM_DATA, nested(NFTA_DATA_VERDICT, verdict)))
    body = _header(family) + string(NFTA_SET_ELEM_LIST_TABLE, table) + string(NFTA_SET_ELEM_LIST_SET, name)
    body += nested(NFTA_SET_ELEM_LIST_ELEMENTS, nested(NFTA_LIST_ELEM, *elem))
    return _msg(NFT_MSG_NEWSETELEM if op == "add" else NFT_MSG_DELSETELEM, body)


def is_rule(req: Request) -> bool:
    """Whether a message of a transaction adds a rule."""
    return req[0] == (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_NEWRULE


# ---------------------------------------------------------------------- lookups
def chain_use(sock: Socket, family: str, table: str, name: str) -> int | None:
    """The kernel's use count of a chain (its rules + jumps/gotos/map elements to it), or
    None when it does not exist: one NFT_MSG_GETCHAIN round trip (~35 us). libnftables does
    not expose the count, and its cheapest command fills a cache first."""
    body = _header(family) + string(NFTA_CHAIN_TABLE, table) + string(NFTA_CHAIN_NAME, name)
    reply = _get(sock, _msg(NFT_MSG_GETCHAIN, body), f"GETCHAIN {family} {table} {name}")
    if reply is None:
        return None
    use = parse_attrs(reply, NFGENMSG.size).get(NFTA_CHAIN_USE)
    if use is None or len(use) < 4:
        raise NetlinkError(0, f"GETCHAIN {family} {table} {name}: no use count in the reply")
    return int(struct.unpack_from(">I", use)[0])


def table_exists(sock: Socket, family: str, table: str) -> bool:
    """Whether a table exists: one NFT_MSG_GETTABLE round trip, no cache fill."""
    body = _header(family) + string(NFTA_TABLE_NAME, table)
    return _get(sock, _msg(NFT_MSG_GETTABLE, body), f"GETTABLE {family} {table}") is not None


def _get(sock: Socket, req: Request, what: str) -> bytes | None:
    try:
        replies = sock.request(req, what)
    except NetlinkError as exc:
        if exc.errno == errno.ENOENT:
            return None
        raise
    return replies[0] if replies else None


# ---------------------------------------------------------------------- transactions
_BATCH = NFGENMSG.pack(0, 0, htons(NFNL_SUBSYS_NFTABLES))  # res_id: the subsystem
_FRAME = ((NFNL_MSG_BATCH_BEGIN, 0, _BATCH), (NFNL_MSG_BATCH_END, 0, _BATCH))


def transaction(sock: Socket, messages: list[Request]) -> None:
    """Send ``messages`` as one nf_tables transaction; NetlinkError (naming each refused
    message by its position, with the kernel's reason) when the kernel refused any: then
    none applied."""
    results = sock.batch(messages, [f"message {i}" for i in range(1, len(messages) + 1)], frame=_FRAME)
    errors = [res for res in results if isinstance(res, NetlinkError)]
    if errors:
        refused = [e for e in errors if e.errno != errno.ECANCELED] or errors
        raise NetlinkError(refused[0].errno, "; ".join(str(e.strerror or e) for e in refused))



# ---------------------------------------------------------------------- rule expressions
class Unsupported(Exception):
    """An expression this encoder does not cover: use libnftables for the rule."""


#: (nfproto, {field: (offset, length)}) of the network headers
_NETWORK = {"ip": (NFPROTO_IPV4, {"saddr": (12, 4), "daddr": (16, 4)}),
            "ip6": (NFPROTO_IPV6, {"saddr": (8, 16), "daddr": (24, 16)})}
_NFPROTO_NAMES = {"ipv4": "ip", "ipv6": "ip6"}
_L4PROTO = {"tcp": 6, "udp": 17, "sctp": 132}
_PORT_OFFSET = {"sport": 0, "dport": 2}
_VERDICTS = {"accept": NF_ACCEPT, "return": NFT_RETURN, "goto": NFT_GOTO, "jump": NFT_JUMP}
#: ip_conntrack_status bits by the names nft uses
_CT_STATUS_BITS = {"expected": 0x1, "seen-reply": 0x2, "assured": 0x4, "confirmed": 0x8, "snat": 0x10, "dnat": 0x20}


#: the rule encoder repeats the same few register, operator and key attributes
_be32 = lru_cache(maxsize=256)(core.be32)


def _expr(name: str, *attrs: bytes) -> bytes:
    return nested(NFTA_LIST_ELEM, string(NFTA_EXPR_NAME, name), nested(NFTA_EXPR_DATA, *attrs))


def _value(data: bytes) -> bytes:
    return attr(NFTA_DATA_VALUE, data)


# the leaf encoders are cached: most expressions repeat from rule to rule and pod to pod
@lru_cache(maxsize=1024)
def _cmp(data: bytes, op: int = NFT_CMP_EQ) -> bytes:
    return _expr("cmp", _be32(NFTA_CMP_SREG, NFT_REG_1), _be32(NFTA_CMP_OP, op), nested(NFTA_CMP_DATA, _value(data)))


@lru_cache(maxsize=16)
def _meta(key: int) -> bytes:
    return _expr("meta", _be32(NFTA_META_KEY, key), _be32(NFTA_META_DREG, NFT_REG_1))


@lru_cache(maxsize=64)
def _payload(base: int, offset: int, length: int) -> bytes:
    return _expr("payload", _be32(NFTA_PAYLOAD_DREG, NFT_REG_1), _be32(NFTA_PAYLOAD_BASE, base),
                 _be32(NFTA_PAYLOAD_OFFSET, offset), _be32(NFTA_PAYLOAD_LEN, length))


@lru_cache(maxsize=64)
def _bitwise(mask: bytes) -> bytes:
    return _expr("bitwise", _be32(NFTA_BITWISE_SREG, NFT_REG_1), _be32(NFTA_BITWISE_DREG, NFT_REG_1),
                 _be32(NFTA_BITWISE_LEN, len(mask)), nested(NFTA_BITWISE_MASK, _value(mask)),
                 nested(NFTA_BITWISE_XOR, _value(bytes(len(mask)))))


def _immediate(reg: int, data: bytes) -> bytes:
    return _expr("immediate", _be32(NFTA_IMMEDIATE_DREG, reg), nested(NFTA_IMMEDIATE_DATA, data))


@lru_cache(maxsize=16)
def _verdict(code: int, target: str | None = None) -> bytes:
    verdict = _be32(NFTA_VERDICT_CODE, code) + (string(NFTA_VERDICT_CHAIN, target) if target is not None else b"")
    return _immediate(NFT_REG_VERDICT, nested(NFTA_DATA_VERDICT, verdict))


def _packed(proto: str, addr: Any) -> bytes:
    """An ``ip``/``ip6`` address in network order (inet_pton: ~20x faster than ipaddress)."""
    try:
        return inet_pton(AF_INET if proto == "ip" else AF_INET6, addr)
    except (OSError, TypeError):
        raise Unsupported(f"{proto} address {addr!r}") from None


class _Rule:
    """Compiles one rule's expressions, tracking what its matches established so far."""

    def __init__(self) -> None:
        self.out: list[bytes] = []
        self.net: str | None = None  # "ip"/"ip6" once the network protocol is matched
        self.l4: str | None = None  # "tcp"/"udp"/"sctp" once the transport protocol is

    def need_net(self, proto: str) -> None:
        if self.net is None:  # libnftables' dependency in an inet table
            self.out += [_meta(NFT_META_NFPROTO), _cmp(bytes([_NETWORK[proto][0]]))]
            self.net = proto
        elif self.net != proto:
            raise Unsupported(f"{proto} after {self.net}")

    def need_l4(self, proto: str) -> None:
        if self.l4 is None:
            self.out += [_meta(NFT_META_L4PROTO), _cmp(bytes([_L4PROTO[proto]]))]
            self.l4 = proto
        elif self.l4 != proto:
            raise Unsupported(f"{proto} after {self.l4}")

    def match(self, left: dict[str, Any], right: Any, op: str) -> None:
        if "meta" in left and op == "==":
            key = left["meta"].get("key")
            if key == "nfproto" and right in _NFPROTO_NAMES and self.net is None:
                self.net = _NFPROTO_NAMES[right]
                self.out += [_meta(NFT_META_NFPROTO), _cmp(bytes([_NETWORK[self.net][0]]))]
                return
            if key == "l4proto" and right in _L4PROTO and self.l4 is None:
                self.l4 = right
                self.out += [_meta(NFT_META_L4PROTO), _cmp(bytes([_L4PROTO[right]]))]
                return
        elif "payload" in left and op == "==" and set(left["payload"]) == {"protocol", "field"}:
            proto, fld = left["payload"]["protocol"], left["payload"]["field"]
            if proto in _NETWORK and fld in _NETWORK[proto][1]:
                self.need_net(proto)
                self.address(proto, fld, right)
                return
            if proto in _L4PROTO and fld in _PORT_OFFSET and type(right) is int and 0 <= right <= 0xFFFF:
                self.need_l4(proto)
                self.out += [_payload(NFT_PAYLOAD_TRANSPORT_HEADER, _PORT_OFFSET[fld], 2),
                             _cmp(right.to_bytes(2, "big"))]
                return
        elif "ct" in left and op == "in" and left["ct"] == {"key": "status"}:
            names = right if isinstance(right, list) else [right]
            if names and all(n in _CT_STATUS_BITS for n in names):
                mask = struct.pack("=I", sum(_CT_STATUS_BITS[n] for n in set(names)))  # host byte order
                self.out += [_expr("ct", _be32(NFTA_CT_KEY, NFT_CT_STATUS), _be32(NFTA_CT_DREG, NFT_REG_1)),
                             _bitwise(mask), _cmp(bytes(4), NFT_CMP_NEQ)]
                return
        raise Unsupported(f"match {left} {op} {right}")

    def address(self, proto: str, fld: str, right: Any) -> None:
        """An address, or a prefix: fewer bytes when byte aligned, else a mask (as nft 1.0.6)."""
        offset, size = _NETWORK[proto][1][fld]
        if isinstance(right, str) and "/" not in right:
            self.out += [_payload(NFT_PAYLOAD_NETWORK_HEADER, offset, size), _cmp(_packed(proto, right))]
            return
        if isinstance(right, dict) and set(right) == {"prefix"}:
            net = ipaddress.ip_network(f"{right['prefix']['addr']}/{right['prefix']['len']}")
        else:
            raise Unsupported(f"{proto} {fld} {right}")
        if net.version != (4 if proto == "ip" else 6) or net.prefixlen == 0:
            raise Unsupported(f"{proto} {fld} {net}")
        packed = net.network_address.packed
        if net.prefixlen % 8 == 0:
            n = net.prefixlen // 8
            self.out += [_payload(NFT_PAYLOAD_NETWORK_HEADER, offset, n), _cmp(packed[:n])]
        else:
            self.out += [_payload(NFT_PAYLOAD_NETWORK_HEADER, offset, size), _bitwise(net.netmask.packed),
                         _cmp(packed)]

    def statement(self, key: str, value: Any) -> None:
        if key == "dnat" and isinstance(value, dict) and set(value) == {"family", "addr", "port"}:
            fam = value["family"]
            # without a network match first, libnftables would add one: not modelled here
            if fam not in _NETWORK or self.net != fam or type(value["port"]) is not int:
                raise Unsupported(f"dnat {value}")
            self.out += [
                _immediate(NFT_REG_1, _value(_packed(fam, value["addr"]))),
                _immediate(NFT_REG_2, _value(value["port"].to_bytes(2, "big"))),
                _expr("nat", _be32(NFTA_NAT_TYPE, NFT_NAT_DNAT), _be32(NFTA_NAT_FAMILY, _NETWORK[fam][0]),
                      _be32(NFTA_NAT_REG_ADDR_MIN, NFT_REG_1), _be32(NFTA_NAT_REG_PROTO_MIN, NFT_REG_2),
                      _be32(NFTA_NAT_FLAGS, NF_NAT_RANGE_PROTO_SPECIFIED)),
            ]
        elif key == "masquerade" and value is None:
            self.out.append(_expr("masq"))
        elif key in ("accept", "return") and value is None:
            self.out.append(_verdict(_VERDICTS[key]))
        elif key in ("goto", "jump") and isinstance(value, dict) and set(value) == {"target"}:
            self.out.append(_verdict(_VERDICTS[key], str(value["target"])))
        else:
            raise Unsupported(f"statement {key}")


def rule(family: str, table: str, chain: str, exprs: list[dict[str, Any]], comment: str | None) -> Request:
    """An ``add rule`` (appended) for :func:`transaction`; raises :class:`Unsupported`.

    ``exprs`` are libnftables JSON expressions; only an ``inet`` table's dependencies are
    modelled. The comment goes into the rule's user data as libnftnl's TLV (type 0, length
    including the NUL), which is where ``nft`` reads it from.
    """
    if family != "inet":
        raise Unsupported(f"family {family}")
    r = _Rule()
    for item in exprs:
        if len(item) != 1:
            raise Unsupported(f"expression {item}")
        ((key, value),) = item.items()
        if key == "match" and isinstance(value, dict):
            r.match(value.get("left") or {}, value.get("right"), value.get("op", "=="))
        else:
            r.statement(key, value)
    body = _header(family) + string(NFTA_RULE_TABLE, table) + string(NFTA_RULE_CHAIN, chain)
    body += nested(NFTA_RULE_EXPRESSIONS, *r.out)
    if comment is not None:
        text = comment.encode() + b"\0"
        if len(text) > 255:
            raise Unsupported("comment longer than a udata TLV")
        body += attr(NFTA_RULE_USERDATA, bytes([NFTNL_UDATA_RULE_COMMENT, len(text)]) + text)
    return _msg(NFT_MSG_NEWRULE, body)
