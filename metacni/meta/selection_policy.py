"""What a pod asks for through its annotation obeys the node policy (docs/security.md,
docs/design/1403-annotation-requests.md): host ports in the node's range and not reserved, a
``hostIP`` of the node's own, unicast addresses and MACs that are not the node's, and only for
networks of the pod's namespace or of ``globalNamespaces``. Whether a host port is free is
:mod:`.hostports`'s question.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from metacni.kernel.routes import is_node_address

from .refusal import refused

if TYPE_CHECKING:
    from .annotations import NetworkSelection
    from .trust import TenantPolicy


#: at most this many ``portMappings`` per network, and this many addresses (``ips`` and
#: ``cni-args.ips`` together): each is checked against the kernel, each mapping becomes rules
MAX_PORT_MAPPINGS = 64
MAX_IPS = 16


def check_selection(sel: NetworkSelection, *, pod_namespace: str, global_namespaces: list[str],
                    policy: TenantPolicy, what: str = "network") -> None:
    """What a pod asks for through the annotation: ports, addresses and MACs obey the node
    policy, and only NADs of the pod's namespace or globalNamespaces may carry them."""
    where = f"{what} {sel.ref}"
    asked = [k for k, v in (("portMappings", sel.port_mappings), ("ips", sel.ips), ("mac", sel.mac),
                            ("cni-args", sel.cni_args)) if v is not None]
    if asked and sel.namespace != pod_namespace and sel.namespace not in global_namespaces:
        raise refused(f"{where}: {', '.join(asked)} may only be requested for a network of the pod's namespace "
                      f"{pod_namespace!r} or of globalNamespaces {global_namespaces}")
    if len(sel.port_mappings or []) > MAX_PORT_MAPPINGS:
        raise refused(f"{where}: portMappings has {len(sel.port_mappings or [])} entries; at most "
                      f"{MAX_PORT_MAPPINGS} per network")
    for i, mapping in enumerate(sel.port_mappings or []):
        _check_mapping(mapping, f"{where}: portMappings[{i}]", policy)
    ips = list(sel.ips or [])
    cni_ips = (sel.cni_args or {}).get("ips")
    if cni_ips is not None:
        if not isinstance(cni_ips, list) or not all(isinstance(v, str) for v in cni_ips):
            raise refused(f"{where}: cni-args.ips must be a list of strings")
        ips += cni_ips
    if len(ips) > MAX_IPS:
        raise refused(f"{where}: {len(ips)} addresses requested (ips and cni-args.ips); at most {MAX_IPS} per network")
    for value in ips:
        _check_ip(value, where)
    cni_mac = (sel.cni_args or {}).get("mac")  # the in-tree bridge and tuning read args.cni.mac
    if cni_mac is not None and not isinstance(cni_mac, str):
        raise refused(f"{where}: cni-args.mac must be a string")
    for mac in (sel.mac, cni_mac):
        if mac is not None:
            _check_mac(mac, where)


def _check_mapping(mapping: Mapping[str, Any], where: str, policy: TenantPolicy) -> None:
    host, container = mapping.get("hostPort"), mapping.get("containerPort")
    for key, value in (("hostPort", host), ("containerPort", container)):
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
            raise refused(f"{where}: {key} {value!r} is not a port number (1-65535)")
    assert isinstance(host, int)
    policy.check_host_port(host, where)
    protocol = mapping.get("protocol", "tcp")
    if not isinstance(protocol, str) or protocol.lower() not in ("tcp", "udp", "sctp"):
        raise refused(f"{where}: protocol {protocol!r} is not tcp, udp or sctp")
    host_ip = mapping.get("hostIP")
    if host_ip not in (None, ""):
        try:
            address = ipaddress.ip_address(str(host_ip))
        except ValueError:
            raise refused(f"{where}: hostIP {host_ip!r} is not an IP address") from None
        if not address.is_unspecified and not is_node_address(address):
            # a DNAT rule for another pod's or a Service's address would take that traffic
            raise refused(f"{where}: hostIP {host_ip!r} is not an address of this node")


def _check_ip(value: str, where: str) -> None:
    try:
        ip = ipaddress.ip_interface(value.strip()).ip
    except ValueError:
        raise refused(f"{where}: ips entry {value!r} is not an IP address") from None
    if ip.is_unspecified or ip.is_loopback or ip.is_multicast or ip.is_link_local or \
            (isinstance(ip, ipaddress.IPv4Address) and ip == ipaddress.IPv4Address("255.255.255.255")):
        raise refused(f"{where}: ips entry {value!r} is not a unicast address a pod may use")
    if is_node_address(ip):  # on a shared L2 (macvlan on the uplink) the pod's ARP would take it
        raise refused(f"{where}: ips entry {value!r} is an address of this node")


def _check_mac(value: str, where: str) -> None:
    digits = value.replace(":", "").replace("-", "").replace(".", "")
    if len(digits) == 12:
        first = int(digits[:2], 16)
        if first & 1 or int(digits, 16) == 0:
            raise refused(f"{where}: mac {value!r} is not a unicast hardware address")
