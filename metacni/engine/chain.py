"""The runtime side of CNI (what libcni does): run a configuration list for one attachment.

Differences from libcni, each on purpose:
- a failed ADD is rolled back (DEL of every plugin already run, in reverse), so nothing is
  left half-configured -- whatever the failure: a CNI error, a crash in an in-process plugin,
  an interrupt; one failing DEL of the rollback does not stop the others;
- DEL without runtime arguments reuses the ones cached at ADD, so a portmap-style plugin can
  still find its mappings;
- every plugin error is re-labelled with the network and plugin that raised it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from logging import getLogger
from typing import TYPE_CHECKING

from metacni.spec import naming, versions
from metacni.spec.args import CniArgs
from metacni.spec.config import NetworkList
from metacni.spec.errors import CNIError, Code
from metacni.spec.results import Result, convert, parse_result

from .cache import CacheEntry, ResultCache
from .invoke import Invoker
from .request import ADD, CHECK, DEL, GC, STATUS, Invocation

if TYPE_CHECKING:
    from typing import Any

log = getLogger(__name__)


@dataclass
class RuntimeConf:
    """What a runtime knows about one attachment (libcni's ``RuntimeConf``)."""

    container_id: str
    netns: str = ""
    ifname: str = "eth0"
    args: CniArgs = field(default_factory=CniArgs)
    capability_args: dict[str, Any] = field(default_factory=dict)


#: keys libcni sets in a plugin's stdin itself, dropped from the plugin object in any spelling
#: (a plugin written in Go reads ``RuntimeConfig`` as ``runtimeConfig``)
_LIBCNI_KEYS = ("name", "cniVersion", "prevResult", "runtimeConfig")
_LIBCNI_FOLDED = frozenset(k.casefold() for k in _LIBCNI_KEYS)


def plugin_config(plugin: Mapping[str, Any], net: NetworkList,
                  capability_args: Mapping[str, Any] | None) -> dict[str, Any]:
    """A plugin's stdin, built as libcni does: name/cniVersion from the list, runtimeConfig
    holding only the capabilities the plugin enables and the runtime supplied (omitted when
    empty). ``capabilities`` stays in place, as libcni leaves it."""
    conf = {k: v for k, v in plugin.items() if k.casefold() not in _LIBCNI_FOLDED}
    conf["name"] = net.name
    conf["cniVersion"] = net.cni_version
    runtime: dict[str, Any] = {}
    if capability_args:
        lowered = {k.lower(): v for k, v in capability_args.items()}
        for cap, enabled in (plugin.get("capabilities") or {}).items():
            if enabled is not True:
                continue
            if cap in capability_args:
                runtime[cap] = capability_args[cap]
            elif cap.lower() in lowered:
                runtime[cap] = lowered[cap.lower()]
    if runtime:
        conf["runtimeConfig"] = runtime
    return conf


def _relabel(error: CNIError, net: NetworkList, plugin_type: str, verb: str) -> CNIError:
    where = f"network {net.name!r}, plugin {plugin_type!r}, {verb}"
    if where in error.details:
        return error
    details = f"{where}: {error.details}" if error.details else where
    return CNIError(error.code, error.msg, details)


class ChainRunner:
    def __init__(self, invoker: Invoker, cni_path: Sequence[str], cache: ResultCache) -> None:
        self.invoker = invoker
        self.cni_path = tuple(cni_path)
        self.cache = cache

    def _invocation(self, command: str, rt: RuntimeConf | None) -> Invocation:
        if rt is None:
            return Invocation(command=command, cni_path=self.cni_path)
        return Invocation(command=command, container_id=rt.container_id, netns=rt.netns, ifname=rt.ifname,
                          args=rt.args, cni_path=self.cni_path)

    def _run(self, net: NetworkList, plugin: Mapping[str, Any], verb: str, rt: RuntimeConf | None,
             prev: Result | None, extra: Mapping[str, Any] | None = None) -> Result | None:
        conf = plugin_config(plugin, net, rt.capability_args if rt else None)
        if extra:
            conf.update(extra)
        plugin_type = str(plugin.get("type", ""))
        try:
            return self.invoker.invoke(plugin_type, conf, self._invocation(verb, rt), prev_result=prev)
        except CNIError as exc:
            raise _relabel(exc, net, plugin_type, verb) from exc

    # ------------------------------------------------------------------ ADD
    def add(self, net: NetworkList, rt: RuntimeConf, *, rollback: bool = True) -> Result:
        naming.check_network_name(net.name)
        naming.check_container_id(rt.container_id)
        naming.check_ifname(rt.ifname)
        if not versions.is_known(net.cni_version):
            raise CNIError(Code.INCOMPATIBLE_VERSION, "incompatible CNI versions",
                           f"network {net.name!r} asks for cniVersion {net.cni_version!r}; "
                           f"supported: {', '.join(versions.ALL_VERSIONS)}")
        prev: Result | None = None
        done: list[Mapping[str, Any]] = []
        try:
            for plugin in net.plugins:
                done.append(plugin)
                prev = self._run(net, plugin, ADD, rt, prev)
            if prev is None:
                raise CNIError(Code.INTERNAL, "no result", f"network {net.name!r} produced no result")
            result = convert(prev, net.cni_version)
            self.cache.write(CacheEntry(
                network_name=net.name, container_id=rt.container_id, ifname=rt.ifname, config=net.raw,
                netns=rt.netns, cni_args=list(rt.args.pairs), capability_args=dict(rt.capability_args),
                result=result.to_wire(),
            ))
        except BaseException as exc:  # not only CNIError: a bug or a failed cache write must not leak
            if rollback:
                self.rollback(net, rt, done, prev, exc)
            raise
        return result

    def rollback(self, net: NetworkList, rt: RuntimeConf, done: list[Mapping[str, Any]],
                  prev: Result | None, cause: BaseException) -> None:
        reason = cause.msg if isinstance(cause, CNIError) else f"{type(cause).__name__}: {cause}"
        for plugin in reversed(done):
            try:
                self._run(net, plugin, DEL, rt, prev if versions.at_least(net.cni_version, "0.4.0") else None)
            except Exception as exc:
                log.error("rollback of %s on network %s after %s failed: %s", plugin.get("type"), net.name,
                          reason, exc)

    # ------------------------------------------------------------------ DEL
    def cached_result(self, net: NetworkList, rt: RuntimeConf, *,
                      strict: bool) -> tuple[Result | None, CacheEntry | None]:
        entry = self.cache.read(net.name, rt.container_id, rt.ifname)
        if entry is None or entry.result is None:
            return None, entry
        try:
            return convert(parse_result(entry.result, None), net.cni_version), entry
        except CNIError as exc:
            if strict:
                raise CNIError(exc.code, "cached result is unusable",
                               f"network {net.name!r}, container {rt.container_id!r}: {exc.details}") from exc
            log.warning("cached result for %s/%s/%s is unusable (%s); running DEL without prevResult",
                        net.name, rt.container_id, rt.ifname, exc)
            return None, entry

    def delete(self, net: NetworkList, rt: RuntimeConf) -> None:
        naming.check_network_name(net.name)
        prev: Result | None = None
        entry: CacheEntry | None = None
        if versions.at_least(versions.normalize(net.cni_version), "0.4.0"):
            prev, entry = self.cached_result(net, rt, strict=False)
        else:
            entry = self.cache.read(net.name, rt.container_id, rt.ifname)
        if entry is not None and not rt.capability_args and entry.capability_args:
            rt = RuntimeConf(rt.container_id, rt.netns, rt.ifname, rt.args, dict(entry.capability_args))
        for plugin in reversed(net.plugins):
            self._run(net, plugin, DEL, rt, prev)
        self.cache.delete(net.name, rt.container_id, rt.ifname)

    # ------------------------------------------------------------------ CHECK
    def check(self, net: NetworkList, rt: RuntimeConf) -> None:
        version = versions.normalize(net.cni_version)
        if not versions.at_least(version, "0.4.0"):
            raise CNIError(Code.INCOMPATIBLE_VERSION, "configuration version does not support the CHECK command",
                           f"network {net.name!r} has cniVersion {version}")
        if net.disable_check:
            return
        prev, _ = self.cached_result(net, rt, strict=True)
        for plugin in net.plugins:
            self._run(net, plugin, CHECK, rt, prev)

    # ------------------------------------------------------------------ GC / STATUS
    def gc(self, net: NetworkList, valid: Sequence[tuple[str, str]] | None) -> None:
        """DEL every cached attachment of this network not in ``valid``, then GC each plugin."""
        if net.disable_gc:
            return
        keep = set(valid or [])
        errors: list[str] = []
        for entry in self.cache.entries(net.name):
            if (entry.container_id, entry.ifname) in keep:
                continue
            rt = RuntimeConf(entry.container_id, entry.netns, entry.ifname, entry.args, dict(entry.capability_args))
            try:
                self.delete(net, rt)
            except Exception as exc:  # the next entries are still collected
                errors.append(f"DEL {entry.container_id}/{entry.ifname}: {exc}")
        if versions.at_least(versions.normalize(net.cni_version), "1.1.0"):
            attachments = [{"containerID": cid, "ifname": ifn} for cid, ifn in sorted(keep)]
            extra = {"cni.dev/valid-attachments": attachments, "cni.dev/attachments": attachments}
            for plugin in net.plugins:
                try:
                    self._run(net, plugin, GC, None, None, extra)
                except Exception as exc:  # every plugin gets its GC
                    errors.append(str(exc))
        if errors:
            raise CNIError(Code.UNKNOWN, "garbage collection had errors", "; ".join(errors))

    def status(self, net: NetworkList) -> None:
        if not versions.at_least(versions.normalize(net.cni_version), "1.1.0"):
            return
        for plugin in net.plugins:
            self._run(net, plugin, STATUS, None, None)
