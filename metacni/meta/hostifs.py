"""Which node links a NAD's plugins may name (docs/security.md, docs/design/1409-host-interfaces.md).

Reference and third-party CNI binaries take host interfaces from their config: ``host-device``
moves a node link (``device``, ``hwaddr``, ``kernelpath``, ``pciBusID``) into the pod,
``macvlan``/``ipvlan``/``vlan`` hang a child on a ``master`` (``mode: passthru`` takes the
master whole), SR-IOV-style plugins take a ``deviceID``. A NAD is tenant input, so these keys
obey node settings (node-only keys of the node's meta config, never of a NAD):

- ``hostInterfaces`` (globs, default :data:`DEFAULT_HOST_INTERFACES`): links a NAD may name as
  a parent (``master``, any plugin type). The default is the usual uplink names, what the
  Multus recipes name (``"master": "eth0"``); the node's internal links (``cni0``, veths,
  tunnels, ``lo``, NAD bridges) match none of them. A NAD bridge may not take one of these names.
- ``hostDevices`` (globs, default none): links or devices (names, MACs, kernel paths, PCI
  addresses) a NAD may *take*: host-device's keys, ``deviceID``/``pciBusID`` and macvlan's
  ``passthru``. Otherwise a device reaches a plugin only from the device plugin (the NAD's
  ``k8s.v1.cni.cncf.io/resourceName``, :mod:`.devices`), which writes ``deviceID``/``pciBusID``
  after this check.
- ``nadPluginTypes`` (list, default: any): the plugin and IPAM types a NAD may use.

``ptp``'s addresses and gateways may not overlap node routes (:mod:`.hostroutes`); static IPAM
addresses and host-local ranges may not be or hold the node's own (checked in the namespace
metacni runs in).
Keys that change state every pod shares (portmap's ``markMasqBit``/``externalSetMarkChain``)
are refused in NADs whatever the settings.

:func:`check_plugin` runs from :func:`.trust.sanitize_tenant_config` on every plugin object of
a NAD's config, before any kernel or file work; a refusal is code 7 naming the field, the
network and the setting that would allow it (the meta plugin adds the pod). Link names are
matched as given (a tenant cannot rename a node link); the node's addresses and routes are read
from the kernel, in the namespace metacni runs in.
"""

from __future__ import annotations

import fnmatch
import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from metacni.kernel.routes import is_node_address, node_addresses
from metacni.spec.errors import CNIError, Code

from .hostroutes import ROUTING_TYPES, check_routing_plugin, host_local_ranges
from .refusal import json_path, refused

#: uplink names (kernel ``eth*``, predictable ``en*``, biosdevname ``em*``, bonds, teams and
#: their VLAN sub-interfaces): what Multus recipes use as ``master``
DEFAULT_HOST_INTERFACES: tuple[str, ...] = ("eth*", "en*", "em*", "bond*", "team*")

#: plugin type -> keys that select a node device to move into the pod
DEVICE_KEYS: Mapping[str, tuple[str, ...]] = {"host-device": ("device", "hwaddr", "kernelpath")}
#: keys of any plugin type that select a node device (written by metacni from the device plugin)
ANY_TYPE_DEVICE_KEYS = ("deviceID", "pciBusID")
#: parent-link keys of any plugin type
PARENT_KEYS = ("master",)
#: (plugin type, mode) that take the parent link exclusively
EXCLUSIVE_MODES = frozenset({("macvlan", "passthru")})
#: plugin types that use the node's default-route link when ``master`` is absent
DEFAULT_MASTER_TYPES = frozenset({"macvlan", "ipvlan"})
#: plugin type -> keys that set node-wide state shared by every pod: portmap's mark bit or mark
#: chain go into the shared SETMARK/MASQ chains (bit 15 is kube-proxy's drop mark)
NODE_WIDE_KEYS: Mapping[str, tuple[str, ...]] = {"portmap": ("markMasqBit", "externalSetMarkChain")}
#: plugin types whose ``bridge`` names a host bridge
BRIDGE_TYPES = frozenset({"bridge"})
#: plugin types whose ``bridge`` must pre-exist on the node (ovs-cni: an Open vSwitch bridge such
#: as OVN's ``br-int``): only those in ``sharedBridges``, as for untagged bridges (design 1408)
EXISTING_BRIDGE_TYPES = frozenset({"ovs"})


def _globs(conf: Mapping[str, Any], key: str, default: tuple[str, ...] | None) -> tuple[str, ...] | None:
    value = conf.get(key)
    if value is None:
        return default
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise CNIError(Code.INVALID_CONFIG, "invalid metacni configuration",
                       f"{key}: must be a list of non-empty strings")
    return tuple(value)


def _match(value: str, globs: tuple[str, ...]) -> bool:
    return any(fnmatch.fnmatchcase(value, g) for g in globs)


@dataclass(frozen=True)
class HostInterfacePolicy:
    """The node settings bounding the host links a NAD names."""

    host_interfaces: tuple[str, ...] = DEFAULT_HOST_INTERFACES
    host_devices: tuple[str, ...] = ()
    #: None: any type
    nad_plugin_types: tuple[str, ...] | None = None
    #: ``sharedBridges`` (parsed by trust.TenantPolicy): pre-existing bridges NADs may join
    shared_bridges: tuple[str, ...] = ()

    @classmethod
    def from_conf(cls, conf: Mapping[str, Any], shared_bridges: tuple[str, ...] = ()) -> HostInterfacePolicy:
        """``hostInterfaces``, ``hostDevices`` (lists of globs), ``nadPluginTypes`` (list of types)."""
        interfaces = _globs(conf, "hostInterfaces", DEFAULT_HOST_INTERFACES)
        devices = _globs(conf, "hostDevices", ())
        assert interfaces is not None and devices is not None
        return cls(host_interfaces=interfaces, host_devices=devices,
                   nad_plugin_types=_globs(conf, "nadPluginTypes", None), shared_bridges=shared_bridges)

    def may_name_parent(self, link: str) -> bool:
        return _match(link, self.host_interfaces) or _match(link, self.host_devices)

    def may_take(self, device: str) -> bool:
        return _match(device, self.host_devices)


def check_plugin(plugin: Mapping[str, Any], prefix: str, where: str, policy: HostInterfacePolicy) -> None:
    """Code 7 when the plugin object of a NAD's config (``prefix``: its JSON path) names a node
    link, device, address or route the node does not give NADs. ``where`` names the NAD."""
    kind = plugin.get("type")
    _check_type(kind, json_path(prefix, "type"), where, policy)
    ipam = plugin.get("ipam")
    if isinstance(ipam, Mapping) and "type" in ipam:
        _check_type(ipam.get("type"), json_path(prefix, "ipam.type"), where, policy)
    _check_devices(plugin, prefix, where, policy)
    for key in NODE_WIDE_KEYS.get(str(kind), ()):
        if key in plugin:
            raise refused(f"{where}: {json_path(prefix, key)}: sets node-wide firewall state shared by every pod's "
                          "host ports; only the node's own network configs may set it")
    _check_parents(plugin, prefix, where, policy)
    if isinstance(ipam, Mapping) and ipam.get("type") == "static":
        _check_static(ipam, json_path(prefix, "ipam"), where)
    if isinstance(ipam, Mapping) and ipam.get("type") == "host-local":
        _check_host_local(ipam, json_path(prefix, "ipam"), where)
    if kind in ROUTING_TYPES:
        opted_in = policy.nad_plugin_types is not None and kind in policy.nad_plugin_types
        check_routing_plugin(plugin, json_path(prefix, "ipam"), where, opted_in)


def _check_devices(plugin: Mapping[str, Any], prefix: str, where: str, policy: HostInterfacePolicy) -> None:
    """Keys that take a node device: only values in ``hostDevices``."""
    for key in (*DEVICE_KEYS.get(str(plugin.get("type")), ()), *ANY_TYPE_DEVICE_KEYS):
        value = plugin.get(key)
        if value not in (None, "") and (not isinstance(value, str) or not policy.may_take(value)):
            raise refused(f"{where}: {json_path(prefix, key)} {value!r}: a NAD may not take a node device (it would "
                          "leave the node); name a device-plugin resource (NAD annotation "
                          "k8s.v1.cni.cncf.io/resourceName) or list it in the node setting hostDevices")
    runtime = plugin.get("runtimeConfig")
    device = runtime.get("deviceID") if isinstance(runtime, Mapping) else None
    if device not in (None, "") and (not isinstance(device, str) or not policy.may_take(device)):
        raise refused(f"{where}: {json_path(prefix, 'runtimeConfig.deviceID')} {device!r}: device IDs come from the "
                      "device plugin (NAD annotation k8s.v1.cni.cncf.io/resourceName) or the node setting hostDevices")


def _check_parents(plugin: Mapping[str, Any], prefix: str, where: str, policy: HostInterfacePolicy) -> None:
    """``master`` (and its default), passthru's exclusive use, and NAD bridge names."""
    kind = plugin.get("type")
    for key in PARENT_KEYS:
        if plugin.get(key) not in (None, "") or (key == "master" and kind in DEFAULT_MASTER_TYPES):
            _check_parent(plugin.get(key), json_path(prefix, key), where, policy)
    mode = plugin.get("mode")
    if (kind, mode) in EXCLUSIVE_MODES:
        master = plugin.get("master")
        if not isinstance(master, str) or not policy.may_take(master):
            link = repr(master) if master else "the node's default-route link"
            raise refused(f"{where}: {json_path(prefix, 'mode')} {mode!r} takes {link} from the node; "
                          "allowed only for a link listed in the node setting hostDevices")
    bridge = plugin.get("bridge")
    if kind in BRIDGE_TYPES and isinstance(bridge, str) and policy.may_name_parent(bridge):
        raise refused(f"{where}: {json_path(prefix, 'bridge')} {bridge!r} is the name of a node uplink (node settings "
                      "hostInterfaces/hostDevices); a NAD bridge may not take it")
    if kind in EXISTING_BRIDGE_TYPES and bridge not in policy.shared_bridges:
        raise refused(f"{where}: {json_path(prefix, 'bridge')} {bridge!r}: a NAD may join only the node's bridges "
                      f"listed in the node setting sharedBridges ({', '.join(policy.shared_bridges) or 'none'})")


def _check_static(ipam: Mapping[str, Any], path: str, where: str) -> None:
    """static IPAM's addresses may not be the node's own: on a shared L2 (macvlan on the uplink)
    the pod's gratuitous ARP would take the node's address from it."""
    addresses = ipam.get("addresses")
    for i, entry in enumerate(addresses if isinstance(addresses, list) else []):
        value = entry.get("address") if isinstance(entry, Mapping) else None
        try:
            ip = ipaddress.ip_interface(str(value)).ip
        except ValueError:
            continue  # the plugin reports its own config errors
        if is_node_address(ip):
            raise refused(f"{where}: {path}.addresses[{i}].address {value!r} is an address of this node")


def _check_host_local(ipam: Mapping[str, Any], path: str, where: str) -> None:
    """A host-local range may not hand out an address of the node: on a shared L2 the pod would
    take it over. As host-local: the range runs from ``rangeStart`` (default: the subnet's first
    address) to ``rangeEnd`` (default: the last before broadcast), its ``gateway`` excluded."""
    node: set[Any] | None = None
    for at, r in host_local_ranges(ipam):
        try:
            subnet = ipaddress.ip_network(str(r.get("subnet")), strict=False)
            start = ipaddress.ip_address(str(r["rangeStart"])) if r.get("rangeStart") else subnet.network_address + 1
            end = ipaddress.ip_address(str(r["rangeEnd"])) if r.get("rangeEnd") else subnet.broadcast_address - 1
            gateway = ipaddress.ip_address(str(r["gateway"])) if r.get("gateway") else subnet.network_address + 1
        except (ValueError, TypeError):
            continue  # the plugin reports its own config errors
        if {start.version, end.version, gateway.version} != {subnet.version}:
            continue  # likewise
        node = node_addresses() if node is None else node
        taken = sorted(str(a) for a in node if a.version == subnet.version and start <= a <= end  # type: ignore[operator]
                       and a in subnet and a != gateway)
        if taken:
            name = json_path(path, at) if at else path
            raise refused(f"{where}: {name}: the range {start}-{end} holds {', '.join(taken)}, an address of this "
                          "node; a pod given it would take it over (exclude it with rangeStart/rangeEnd)")


def _check_type(kind: Any, path: str, where: str, policy: HostInterfacePolicy) -> None:
    allowed = policy.nad_plugin_types
    if allowed is not None and (not isinstance(kind, str) or kind not in allowed):
        raise refused(f"{where}: {path} {kind!r} is not a plugin type NADs may use on this node "
                      f"(node setting nadPluginTypes: {', '.join(allowed) or 'none'})")


def _check_parent(link: Any, path: str, where: str, policy: HostInterfacePolicy) -> None:
    if link in (None, "") and policy.host_interfaces:
        return  # macvlan/ipvlan: the node's default-route link, its uplink (refused when hostInterfaces is [])
    if not isinstance(link, str) or not policy.may_name_parent(link):
        raise refused(f"{where}: {path} {link!r} is not a node link NADs may use as a parent (node setting "
                      f"hostInterfaces: {', '.join(policy.host_interfaces) or 'none'})")
