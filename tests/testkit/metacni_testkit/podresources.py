"""A fake kubelet PodResources endpoint for tests: a grpcio server on a unix socket speaking the
real v1 protocol (``v1.PodResourcesLister`` with the generated messages of
:mod:`metacni.meta.kubelet_podresources`), answering from a table of pods and their devices.

``get_supported=False`` answers ``Get`` with UNIMPLEMENTED, as a kubelet before 1.27 (or with
the ``KubeletPodResourcesGet`` gate off) does. ``calls`` records the methods asked.
"""

from __future__ import annotations

import os
import threading
from concurrent import futures
from typing import Any

import grpc

from metacni.meta.kubelet_podresources import api_pb2, api_pb2_grpc

PodKey = tuple[str, str]


class FakePodResources(api_pb2_grpc.PodResourcesListerServicer):
    def __init__(self, socket_path: str, *, get_supported: bool = True) -> None:
        self.socket_path = socket_path
        self.get_supported = get_supported
        self.calls: list[str] = []
        # (namespace, name) -> [(container, resource, device ids)]
        self._pods: dict[PodKey, list[tuple[str, str, list[str]]]] = {}
        self._lock = threading.Lock()
        self._server: grpc.Server | None = None

    # ------------------------------------------------------------------ the table
    def set_pod(self, namespace: str, name: str, devices: dict[str, list[str]], container: str = "app") -> None:
        """The pod's container ``container`` holds ``devices`` (resource -> device IDs)."""
        with self._lock:
            entries = [e for e in self._pods.get((namespace, name), []) if e[0] != container]
            entries += [(container, resource, list(ids)) for resource, ids in devices.items()]
            self._pods[(namespace, name)] = entries

    def clear(self) -> None:
        with self._lock:
            self._pods.clear()

    def _pod(self, key: PodKey) -> api_pb2.PodResources:
        containers: dict[str, list[api_pb2.ContainerDevices]] = {}
        for container, resource, ids in self._pods[key]:
            numa = api_pb2.TopologyInfo(nodes=[api_pb2.NUMANode(ID=0)])
            containers.setdefault(container, []).append(
                api_pb2.ContainerDevices(resource_name=resource, device_ids=ids, topology=numa))
        return api_pb2.PodResources(namespace=key[0], name=key[1], containers=[
            api_pb2.ContainerResources(name=c, devices=devs) for c, devs in containers.items()])

    # ------------------------------------------------------------------ the service
    def List(self, request: Any, context: Any) -> api_pb2.ListPodResourcesResponse:  # noqa: N802 - gRPC names
        with self._lock:
            self.calls.append("List")
            return api_pb2.ListPodResourcesResponse(pod_resources=[self._pod(k) for k in self._pods])

    def Get(self, request: Any, context: Any) -> api_pb2.GetPodResourcesResponse:  # noqa: N802
        with self._lock:
            self.calls.append("Get")
            if not self.get_supported:
                context.abort(grpc.StatusCode.UNIMPLEMENTED, "PodResources API Get method disabled")
            key = (request.pod_namespace, request.pod_name)
            if key not in self._pods:  # the kubelet answers a plain error (gRPC UNKNOWN)
                context.abort(grpc.StatusCode.UNKNOWN,
                              f"pod {request.pod_name} in namespace {request.pod_namespace} not found")
            return api_pb2.GetPodResourcesResponse(pod_resources=self._pod(key))

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> FakePodResources:
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
        api_pb2_grpc.add_PodResourcesListerServicer_to_server(self, server)
        if server.add_insecure_port(f"unix://{self.socket_path}") == 0:
            raise OSError(f"cannot listen on {self.socket_path}")
        server.start()
        self._server = server
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop(grace=None).wait(5)
            self._server = None
        if os.path.exists(self.socket_path):
            os.unlink(self.socket_path)

    def __enter__(self) -> FakePodResources:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
