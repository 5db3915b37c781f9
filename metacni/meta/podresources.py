"""Which device-plugin devices a pod holds, asked of the kubelet's PodResources API (gRPC v1).

The kubelet serves ``v1.PodResourcesLister`` on a unix socket (default
:data:`DEFAULT_SOCKET`; meta config key ``podResourcesSocket``). ``Get`` asks for one pod;
a kubelet without it (before Kubernetes 1.27, or with the ``KubeletPodResourcesGet`` feature
gate off) answers UNIMPLEMENTED and ``List`` (every pod of the node) is used instead, as
Multus does. Device IDs are collected per resource over all of the pod's containers and
sorted, so several attachments of one resource get distinct devices in a stable order
(Multus ``SortDeviceIDs``).

``grpc`` and the generated messages are imported only by :func:`pod_devices`: an ADD whose
networks name no resource never loads them.

Errors: the socket missing or the kubelet not answering is ``CNIError`` 11 (try again
later: the kubelet may be restarting), naming the socket and the pod.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from metacni.spec.errors import CNIError, Code

DEFAULT_SOCKET = Path("/var/lib/kubelet/pod-resources/kubelet.sock")
SOCKET_KEY = "podResourcesSocket"
TIMEOUT = 10.0  # seconds, Multus' kubeletConnectionTimeout
MAX_MESSAGE = 16 * 1024 * 1024  # Multus' defaultPodResourcesMaxSize: List on a busy node is large


def socket_path(conf: dict[str, Any]) -> Path:
    """The socket from the meta config (``podResourcesSocket``), else the kubelet's default."""
    value = conf.get(SOCKET_KEY)
    if not value:
        return DEFAULT_SOCKET
    if not isinstance(value, str) or not Path(value).is_absolute():
        raise CNIError(Code.INVALID_CONFIG, "invalid metacni configuration",
                       f"{SOCKET_KEY}: must be an absolute path, got {value!r}")
    return Path(value)


def _unavailable(socket: str | os.PathLike[str], namespace: str, name: str, reason: str) -> CNIError:
    return CNIError(Code.TRY_AGAIN_LATER, "kubelet PodResources API unavailable",
                    f"cannot ask the kubelet which devices pod {namespace}/{name} holds: {reason} "
                    f"(socket {socket}, meta config key {SOCKET_KEY})")


def _collect(pod: Any, into: dict[str, list[str]]) -> None:
    for container in pod.containers:
        for devices in container.devices:
            into.setdefault(devices.resource_name, []).extend(devices.device_ids)


def pod_devices(socket: str | os.PathLike[str], namespace: str, name: str,
                timeout: float = TIMEOUT) -> dict[str, list[str]]:
    """resource name -> the device IDs the pod holds of it (sorted); {} when it holds none."""
    if not Path(socket).exists():
        raise _unavailable(socket, namespace, name, "the socket does not exist (is the kubelet running?)")
    import grpc

    from .kubelet_podresources import api_pb2, api_pb2_grpc

    found: dict[str, list[str]] = {}
    with grpc.insecure_channel(f"unix://{socket}", options=[
            ("grpc.max_receive_message_length", MAX_MESSAGE)]) as channel:
        stub = api_pb2_grpc.PodResourcesListerStub(channel)
        try:
            try:
                reply = stub.Get(api_pb2.GetPodResourcesRequest(pod_name=name, pod_namespace=namespace),
                                 timeout=timeout)
                _collect(reply.pod_resources, found)
            except grpc.RpcError as exc:
                if exc.code() != grpc.StatusCode.UNIMPLEMENTED:
                    raise
                listed = stub.List(api_pb2.ListPodResourcesRequest(), timeout=timeout)
                for pod in listed.pod_resources:
                    if pod.name == name and pod.namespace == namespace:
                        _collect(pod, found)
        except grpc.RpcError as exc:
            raise _unavailable(socket, namespace, name, f"{exc.code().name}: {exc.details()}") from None
    return {resource: sorted(ids) for resource, ids in found.items()}
