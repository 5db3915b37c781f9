"""Device-plugin networks: a NAD naming a resource gets one of the pod's devices of it.

A NAD annotated ``k8s.v1.cni.cncf.io/resourceName: <resource>`` (SR-IOV, DPDK, accelerated
bridges) is attached on a device the kubelet allocated to the pod. As Multus does
(``getKubernetesDelegate``, ``delegateAddDeviceID``, ``delegateRuntimeConfig``):

- the pod's devices come from the kubelet's PodResources API (:mod:`.podresources`), asked
  once per ADD and only when some attachment names a resource;
- the device IDs of a resource are handed out in sorted order, one per attachment naming it,
  so two attachments of one resource get distinct devices;
- the chosen ID is written into every plugin of the delegate's config as ``deviceID`` (and
  as ``pciBusID`` when it is a PCI address; Multus writes ``pciBusID`` whatever the ID is),
  and passed as runtimeConfig ``deviceID`` and ``CNIDeviceInfoFile`` to the plugins that
  declare those capabilities (libcni drops them for the others);
- the NPWG device-info file of the attachment (``deviceInfoDir``/``<ns>-<nad>-<containerID>_<ifname>``)
  is a copy of the device plugin's own file (``<deviceInfoDir>/../dp/<resource>-<deviceID>-device.json``)
  when it wrote one, else written by metacni for a PCI device; a plugin may rewrite it during
  its ADD. Its content is the attachment's ``device-info`` in network-status; DEL removes it.

Differences from Multus: a pod holding fewer devices of the resource than attachments name
it is an error (Multus attaches without a device, which fails later inside the plugin).

Tenant input: the resource name comes from a NAD; it selects only among the devices the
kubelet allocated to this very pod. A ``deviceID`` in the pod's network selection (NPWG; Multus
ignores it, metacni passes it to plugins declaring the capability) must name one of the pod's
own devices too, or the ADD fails: otherwise a tenant could move another pod's VF into its own.
File names are built from validated Kubernetes names.
"""

from __future__ import annotations

import json
import logging
import os
import re
from pathlib import Path
from typing import Any

from metacni.engine.cache import atomic_write
from metacni.spec.config import network_list_from_bytes
from metacni.spec.errors import CNIError, Code
from metacni.spec.naming import NAME_MAX

from . import podresources
from .networks import RESOURCE_NAME, Delegate

log = logging.getLogger(__name__)

PCI_ADDRESS = re.compile(r"^[0-9a-fA-F]{4}:[0-9a-fA-F]{2}:[0-9a-fA-F]{2}\.[0-7]$")
DEVICE_INFO_VERSION = "1.1.0"
DEVICE_ID_CAP = "deviceID"
DEVICE_INFO_CAP = "CNIDeviceInfoFile"
_SAFE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]*$")
#: the longest device-info file name: atomic_write's temporary file is ``.<name>.<12 hex>``
MAX_INFO_NAME = NAME_MAX - len("..") - 12


def is_pci_address(device_id: str) -> bool:
    return bool(PCI_ADDRESS.fullmatch(device_id))


def _file_part(text: str, what: str) -> str:
    part = text.replace("/", "-")
    if not _SAFE.fullmatch(part) or ".." in part:  # match: "$" lets a trailing newline through
        raise CNIError(Code.INVALID_CONFIG, "invalid device-info file name", f"{what} {text!r} cannot name a file")
    return part


def info_file(info_dir: str | os.PathLike[str], d: Delegate, container_id: str) -> Path:
    """The attachment's NPWG device-info file (Multus: ``<delegate name>-<containerID>_<ifname>``,
    ``/`` of ``<ns>/<nad>`` replaced by ``-``)."""
    name = f"{_file_part(d.label, 'network')}-{container_id}_{_file_part(d.ifname, 'interface')}"
    if len(name.encode()) > MAX_INFO_NAME:
        # Multus names it the same way and fails on ENAMETOOLONG once plugins ran; the name is
        # what readers of the file expect, so it is refused up front rather than shortened.
        raise CNIError(Code.INVALID_CONFIG, "device-info file name too long",
                       f"network {d.label!r} (ifname {d.ifname!r}): its device-info file name "
                       f"<network>-<containerID>_<ifname> would be {len(name.encode())} bytes, over "
                       f"{MAX_INFO_NAME} (NAME_MAX {NAME_MAX} less the atomic write's temporary affixes); "
                       "use a shorter NetworkAttachmentDefinition name")
    return Path(info_dir, name)


def plugin_info_file(info_dir: str | os.PathLike[str], resource: str, device_id: str) -> Path:
    """Where a device plugin leaves its device-info file (NPWG device-info spec):
    ``<deviceInfoDir>/../dp/``, with ``..`` taken lexically as Go's ``filepath.Dir`` does."""
    dp_dir = Path(os.path.normpath(info_dir)).parent / "dp"  # normpath: Path keeps "..", Go's Clean does not
    return dp_dir / f"{_file_part(resource, 'resource')}-{_file_part(device_id, 'device')}-device.json"


def with_device(d: Delegate, device_id: str) -> Delegate:
    """``d`` with ``deviceID`` (and ``pciBusID`` for a PCI address) in every plugin's config."""
    data = json.loads(d.net.raw)
    plugins = data["plugins"] if isinstance(data.get("plugins"), list) else [data]
    for plugin in plugins:
        if isinstance(plugin, dict):
            plugin["deviceID"] = device_id
            if is_pci_address(device_id):
                plugin["pciBusID"] = device_id
    d.net = network_list_from_bytes(json.dumps(data).encode(), d.net.source)
    d.capability_args[DEVICE_ID_CAP] = device_id
    return d


def _device_info(info_dir: str | os.PathLike[str], resource: str, device_id: str) -> bytes | None:
    """The device plugin's file for the device, else a PCI device-info document, else None."""
    try:
        return plugin_info_file(info_dir, resource, device_id).read_bytes()
    except (FileNotFoundError, CNIError):  # none, or IDs no device plugin could have named a file by
        pass
    except OSError as exc:
        log.warning("cannot read the device plugin's device-info for %s %s: %s", resource, device_id, exc)
    if is_pci_address(device_id):
        return json.dumps({"type": "pci", "version": DEVICE_INFO_VERSION,
                           "pci": {"pci-address": device_id}}).encode()
    return None


def requested_device(d: Delegate) -> str | None:
    """The ``deviceID`` the pod's annotation asks for on this attachment (NPWG selection), if any."""
    value = d.selection.device_id if d.selection is not None else None
    return value if isinstance(value, str) and value else None


def _choose(wanted: list[Delegate], resources: dict[str, str], held: dict[str, list[str]],
            who: str, in_use: frozenset[str] = frozenset()) -> list[tuple[Delegate, str, str]]:
    """(delegate, resource, device ID) for each wanted delegate. A device the pod's annotation
    names must be one the pod holds (of the NAD's resource, when it names one) and not one
    ``in_use`` (given to another of the pod's attachments); the others get the pod's devices of
    their resource in sorted order, skipping those named explicitly and those in use."""
    named = {dev for d in wanted if (dev := requested_device(d))} | set(in_use)
    owner = {dev: resource for resource, ids in held.items() for dev in ids}
    next_free: dict[str, int] = {}
    out = []
    for d in wanted:
        resource, device = resources.get(d.label, ""), requested_device(d)
        if device is not None:
            if owner.get(device) is None or (resource and owner[device] != resource):
                of = f" of resource {resource!r}" if resource else ""
                raise CNIError(Code.INVALID_CONFIG, "device not allocated to pod",
                               f"network {d.label} ({d.ifname}) asks for deviceID {device!r}, which is not a "
                               f"device{of} {who} holds: it may only name its own devices")
            if device in in_use:
                raise CNIError(Code.INVALID_CONFIG, "device in use",
                               f"network {d.label} ({d.ifname}) asks for deviceID {device!r}, which another of "
                               f"the networks of {who} has already")
            out.append((d, owner[device], device))
            continue
        free = [dev for dev in held.get(resource, []) if dev not in named]
        index = next_free.get(resource, 0)
        if index >= len(free):
            raise CNIError(Code.INVALID_CONFIG, "no device for network",
                           f"network {d.label} ({d.ifname}) needs a device of resource {resource!r} "
                           f"(NAD annotation {RESOURCE_NAME}) but {who} holds {len(free)} of it for "
                           f"{index + 1} attachment(s); request it in the pod's resources.limits")
        next_free[resource] = index + 1
        out.append((d, resource, free[index]))
    return out


def assign(delegates: list[Delegate], resources: dict[str, str], conf: dict[str, Any],
           info_dir: str | os.PathLike[str], pod_namespace: str, pod_name: str, container_id: str,
           in_use: frozenset[str] = frozenset()) -> list[Path]:
    """Give every delegate whose network names a resource (``resources``: label -> resource), or
    whose selection asks for a ``deviceID``, its device (never one ``in_use``: a hot-plug's
    other attachments hold them); write the device-info files. Returns the files written (the
    caller removes them if the ADD fails: :func:`remove_files`)."""
    wanted = [d for d in delegates if resources.get(d.label) or requested_device(d)]
    if not wanted:
        return []
    held = podresources.pod_devices(podresources.socket_path(conf), pod_namespace, pod_name)
    chosen = _choose(wanted, resources, held, f"pod {pod_namespace}/{pod_name}", in_use)
    written: list[Path] = []
    try:
        for d, resource, device_id in chosen:
            with_device(d, device_id)
            path = info_file(info_dir, d, container_id)
            d.capability_args[DEVICE_INFO_CAP] = str(path)  # runtimeConfig: JSON
            content = _device_info(info_dir, resource, device_id)
            if content is not None:
                atomic_write(path, content, mode=0o644, dir_mode=0o755, durable=False)
                written.append(path)
            log.info("pod %s/%s: network %s (%s) gets device %s of %s", pod_namespace, pod_name, d.label,
                     d.ifname, device_id, resource)
    except BaseException:
        remove_files(written)
        raise
    return written


def remove_files(paths: list[Path]) -> None:
    for path in paths:
        path.unlink(missing_ok=True)


def cleanup(delegates: list[Delegate], info_dir: str | os.PathLike[str], container_id: str) -> None:
    """DEL: remove the device-info file of every attachment that was given a device (only the
    file metacni named for it, whatever the cached runtimeConfig says)."""
    paths = []
    for d in delegates:
        if DEVICE_ID_CAP in d.capability_args:
            try:
                paths.append(info_file(info_dir, d, container_id))
            except CNIError as exc:
                log.warning("no device-info file to remove for %s: %s", d.label, exc.details)
    remove_files(paths)
