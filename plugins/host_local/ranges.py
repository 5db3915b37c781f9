"""Address ranges and range sets, canonicalised the way the reference host-local does.

A range is ``subnet`` plus optional ``rangeStart``/``rangeEnd``/``gateway``. Defaults:
gateway = network+1, start = network+1, end = last address (minus the broadcast for IPv4).
The subnet must have no host bits set and must leave room to allocate (/31, /32, /127 and
/128 are refused). A range set is one or more ranges of one family that do not overlap; one
address is allocated from each set.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from typing import Any

IPAddress = IPv4Address | IPv6Address
IPNetwork = IPv4Network | IPv6Network


class RangeError(ValueError):
    """A range or range set that cannot be used; the message names the offending field."""


@dataclass(frozen=True)
class Range:
    subnet: IPNetwork
    start: IPAddress
    end: IPAddress
    gateway: IPAddress

    @property
    def version(self) -> int:
        return self.subnet.version

    def contains(self, ip: IPAddress) -> bool:
        return ip.version == self.version and ip in self.subnet and self.start <= ip <= self.end

    def overlaps(self, other: Range) -> bool:
        return self.version == other.version and self.start <= other.end and other.start <= self.end

    def __str__(self) -> str:
        return f"{self.start}-{self.end}"


RangeSet = tuple[Range, ...]


def _addr(value: Any, field: str) -> IPAddress:
    if not isinstance(value, str):
        raise RangeError(f"{field}: expected an IP address string, got {value!r}")
    try:
        return ipaddress.ip_address(value.strip())
    except ValueError:
        raise RangeError(f"{field}: invalid IP address {value!r}") from None


def parse_range(obj: Mapping[str, Any], where: str) -> Range:
    """One range object; ``where`` (e.g. ``ipam.ranges[0][1]``) prefixes every error."""
    if not isinstance(obj, Mapping):
        raise RangeError(f"{where}: expected an object, got {type(obj).__name__}")
    raw = obj.get("subnet")
    if not isinstance(raw, str) or not raw:
        raise RangeError(f"{where}.subnet: missing or not a string")
    try:
        iface = ipaddress.ip_interface(raw.strip())
    except ValueError:
        raise RangeError(f"{where}.subnet: invalid CIDR {raw!r}") from None
    subnet = iface.network
    if iface.ip != subnet.network_address:
        raise RangeError(f"{where}.subnet: {raw} has host bits set; for a /{subnet.prefixlen} the network "
                         f"address is {subnet.network_address}")
    if subnet.max_prefixlen - subnet.prefixlen < 2:
        raise RangeError(f"{where}.subnet: network {subnet} too small to allocate from")
    first = subnet.network_address + 1
    last = subnet.broadcast_address - 1 if subnet.version == 4 else subnet.broadcast_address

    def within(key: str, default: IPAddress) -> IPAddress:
        if obj.get(key) in (None, ""):
            return default
        ip = _addr(obj[key], f"{where}.{key}")
        if ip.version != subnet.version or ip not in subnet:
            raise RangeError(f"{where}.{key}: {ip} not in network {subnet}")
        return ip

    start = within("rangeStart", first)
    end = within("rangeEnd", last)
    if start > end:
        raise RangeError(f"{where}: rangeStart {start} is after rangeEnd {end}")
    gateway = first if obj.get("gateway") in (None, "") else _addr(obj["gateway"], f"{where}.gateway")
    if gateway.version != subnet.version:
        raise RangeError(f"{where}.gateway: {gateway} is not of the subnet's address family")
    return Range(subnet=subnet, start=start, end=end, gateway=gateway)


def parse_range_set(items: Any, where: str) -> RangeSet:
    if not isinstance(items, Sequence) or isinstance(items, str | bytes):
        raise RangeError(f"{where}: expected a list of ranges")
    if not items:
        raise RangeError(f"{where}: empty range set")
    return check_range_set(tuple(parse_range(obj, f"{where}[{i}]") for i, obj in enumerate(items)), where)


def check_range_set(ranges: RangeSet, where: str) -> RangeSet:
    """``ranges`` as one range set: not empty, one address family, no overlaps."""
    if not ranges:
        raise RangeError(f"{where}: empty range set")
    if len({r.version for r in ranges}) > 1:
        raise RangeError(f"{where}: mixed address families in one range set")
    for i, a in enumerate(ranges):
        for j in range(i + 1, len(ranges)):
            if a.overlaps(ranges[j]):
                raise RangeError(f"{where}: ranges {a} and {ranges[j]} overlap")
    return ranges


def check_disjoint(sets: Sequence[RangeSet]) -> None:
    """Range sets must not overlap each other, or one address could serve two sets."""
    for i, a in enumerate(sets):
        for j in range(i + 1, len(sets)):
            if any(ra.overlaps(rb) for ra in a for rb in sets[j]):
                raise RangeError(f"range set {i} overlaps with range set {j}")


def range_for(rs: RangeSet, ip: IPAddress) -> Range | None:
    return next((r for r in rs if r.contains(ip)), None)


def describe(rs: RangeSet) -> str:
    return ",".join(str(r) for r in rs)


def candidates(rs: RangeSet, last_reserved: IPAddress | None) -> Iterator[tuple[IPAddress, Range]]:
    """Every allocatable address of the set once, in the reference's round-robin order.

    With a ``last_reserved`` inside the set, the walk starts right after it (moving on to the
    next range, wrapping around) and ends with ``last_reserved`` itself; otherwise it starts
    at the first range's start. Each range's gateway is skipped. Lazy: IPv6 ranges are huge.
    """
    n = len(rs)
    home = None if last_reserved is None else next(
        (i for i, r in enumerate(rs) if r.contains(last_reserved)), None)
    if home is None or last_reserved is None:
        idx, first = 0, rs[0].start
    elif last_reserved == rs[home].end:
        idx, first = (home + 1) % n, rs[(home + 1) % n].start
    else:
        idx, first = home, last_reserved + 1
    # Walk from `first` to the end of its range, then the other ranges whole, then the
    # beginning of the first range up to just before `first`.
    segments: list[tuple[int, IPAddress, IPAddress | None]] = [(idx, first, None)]
    segments += [((idx + k) % n, rs[(idx + k) % n].start, None) for k in range(1, n)]
    if first != rs[idx].start:
        segments.append((idx, rs[idx].start, first))
    for ri, begin, stop_before in segments:
        r = rs[ri]
        ip = begin
        while ip <= r.end and (stop_before is None or ip < stop_before):
            if ip != r.gateway:
                yield ip, r
            if ip == r.end:
                break
            ip = ip + 1
