"""Generated gRPC bindings of the kubelet's PodResources API v1 (``api.proto`` beside this file).

``api_pb2.py``, ``api_pb2.pyi`` and ``api_pb2_grpc.py`` are generated; do not edit them. From the
repository root, regenerate with (grpcio-tools, the version recorded in ``api_pb2_grpc.py``)::

    python3 -m grpc_tools.protoc -I. --python_out=. --pyi_out=. --grpc_python_out=. \\
        metacni/meta/kubelet_podresources/api.proto

Importing this package imports nothing: the generated modules pull in ``grpc`` and
``google.protobuf``, which only an ADD with a device-plugin network needs
(:mod:`metacni.meta.podresources`).
"""
