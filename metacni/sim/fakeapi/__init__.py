"""A fake Kubernetes API server for tests, e2e runs and ``metacni demo``.

It speaks the real REST JSON over plain HTTP (list, get, create, update, patch, delete and chunked
watch with resume, bookmarks and 410 Expired) for pods, nodes, namespaces and
NetworkAttachmentDefinitions, so the unmodified ``kubernetes`` client works against it through a
kubeconfig. It counts requests and can inject faults. Importable without pytest.

    with FakeAPIServer() as api:
        api.write_kubeconfig(tmp / "kubeconfig")
        api.add_node("node-1", "10.244.1.0/24", "192.168.0.11")
        ...
        assert api.reads("pods") == 0

Run standalone with ``python -m metacni.sim.fakeapi --port N --kubeconfig PATH``.
"""

from .errors import ApiError
from .resources import NAD_GROUP, NAD_VERSION
from .server import DEFAULT_TOKEN, FakeAPIServer, Fault, RequestRecord

NAD_PLURAL = "network-attachment-definitions"

__all__ = ["DEFAULT_TOKEN", "NAD_GROUP", "NAD_PLURAL", "NAD_VERSION", "ApiError", "FakeAPIServer", "Fault",
           "RequestRecord"]
