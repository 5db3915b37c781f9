"""The ``metacni`` plugin type: hooks wiring the CNI verbs to :mod:`metacni.meta.service`
(ADD, DEL, CHECK), :mod:`metacni.meta.gc` and :mod:`metacni.meta.status_verb`.

Installed as ``/opt/cni/bin/metacni`` (the console script): the runtime's stdin config has
``type: metacni``, skel dispatches to these hooks in-process. Every hook runs inside :func:`.trust.meta_call`: a
meta call nested in another (a delegate of type ``metacni``) is refused with code 7.
"""

from __future__ import annotations

from metacni.plugin import PluginConfig, PluginInfo, Request, Result, hookimpl
from metacni.spec import versions

#: Everything a runtime may send; each delegate still only receives what it declares.
CAPABILITIES = frozenset({
    "portMappings", "bandwidth", "ips", "mac", "ipRanges", "dns", "aliases", "cgroupPath",
    "infinibandGUID", "deviceID", "io.kubernetes.cri.pod-annotations",
})


@hookimpl
def cni_plugin_info() -> PluginInfo:
    return PluginInfo(versions=versions.ALL_VERSIONS, capabilities=CAPABILITIES,
                      description="meta plugin: primary network plus NetworkAttachmentDefinitions per pod")


@hookimpl
def cni_config_model() -> type[PluginConfig]:
    from .config import MetaKeys

    return MetaKeys


@hookimpl
def cni_add(request: Request) -> Result:
    from . import service, trust

    with trust.meta_call():
        return service.add(request)


@hookimpl
def cni_del(request: Request) -> None:
    from . import service, trust

    with trust.meta_call():
        service.delete(request)


@hookimpl
def cni_check(request: Request) -> None:
    from . import service, trust

    with trust.meta_call():
        service.check(request)


@hookimpl
def cni_gc(request: Request) -> None:
    from . import gc, trust

    with trust.meta_call():
        gc.gc(request)


@hookimpl
def cni_status(request: Request) -> None:
    from . import status_verb, trust

    with trust.meta_call():
        status_verb.status_check(request)
