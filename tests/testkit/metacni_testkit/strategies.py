"""Hypothesis strategies for CNI results (kept consistent: route gateways match dst family)."""

from __future__ import annotations

import ipaddress

from hypothesis import strategies as st

from metacni.spec.results import DNS, Interface, IPConfig, Result, Route

v4 = st.builds(lambda n: str(ipaddress.IPv4Address(n)), st.integers(min_value=0x0A000001, max_value=0x0AFFFFFE))
v6 = st.builds(lambda n: str(ipaddress.IPv6Address(n)),
               st.integers(min_value=0xFD00 << 112, max_value=(0xFD00 << 112) + 2**40))


def cidr(fam: int) -> st.SearchStrategy[str]:
    if fam == 4:
        return st.builds(lambda a, p: f"{a}/{p}", v4, st.integers(8, 32))
    return st.builds(lambda a, p: f"{a}/{p}", v6, st.integers(48, 128))


def ip_config(n_ifaces: int) -> st.SearchStrategy[IPConfig]:
    def build(fam: int) -> st.SearchStrategy[IPConfig]:
        return st.builds(
            IPConfig,
            address=cidr(fam),
            gateway=st.none() | (v4 if fam == 4 else v6),
            interface=st.none() | st.integers(0, max(n_ifaces - 1, 0)) if n_ifaces else st.none(),
        )

    return st.sampled_from([4, 6]).flatmap(build)


def route(with_11_fields: bool) -> st.SearchStrategy[Route]:
    def build(fam: int) -> st.SearchStrategy[Route]:
        extra: dict[str, st.SearchStrategy] = {}
        if with_11_fields:
            opt = st.none() | st.integers(0, 65535)
            extra = {"mtu": opt, "advmss": opt, "priority": opt, "table": opt,
                     "scope": st.none() | st.sampled_from([0, 253, 254])}
        return st.builds(Route, dst=cidr(fam), gw=st.none() | (v4 if fam == 4 else v6), **extra)

    return st.sampled_from([4, 6]).flatmap(build)


def interface(with_11_fields: bool) -> st.SearchStrategy[Interface]:
    names = st.text("abcdefghij0123456789", min_size=1, max_size=15)
    macs = st.none() | st.sampled_from(["aa:bb:cc:dd:ee:01", "02:42:ac:11:00:02"])
    sandbox = st.none() | st.sampled_from(["/var/run/netns/a", "/run/netns/b"])
    extra: dict[str, st.SearchStrategy] = {}
    if with_11_fields:
        extra = {"mtu": st.none() | st.integers(68, 9000), "socket_path": st.none() | st.just("/tmp/s.sock"),
                 "pci_id": st.none() | st.just("0000:04:00.5")}
    return st.builds(Interface, name=names, mac=macs, sandbox=sandbox, **extra)


dns = st.builds(
    DNS,
    nameservers=st.none() | st.lists(v4, min_size=1, max_size=2),
    domain=st.none() | st.just("cluster.local"),
    search=st.none() | st.lists(st.sampled_from(["svc.local", "default.svc"]), min_size=1, max_size=2),
    options=st.none() | st.lists(st.just("ndots:5"), min_size=1, max_size=1),
)


@st.composite
def results(draw: st.DrawFn, version: str = "1.1.0", with_11_fields: bool = True, min_ips: int = 0) -> Result:
    ifaces = draw(st.lists(interface(with_11_fields), max_size=3))
    ips = draw(st.lists(ip_config(len(ifaces)), min_size=min_ips, max_size=4))
    routes = draw(st.lists(route(with_11_fields), max_size=4))
    return Result(cniVersion=version, interfaces=ifaces, ips=ips, routes=routes, dns=draw(dns))
