"""What a plugin hook receives: one invocation of one plugin, with its config."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from metacni.spec import versions
from metacni.spec.args import CniArgs
from metacni.spec.errors import CNIError, Code
from metacni.spec.results import Result
from metacni.spec.runtime_config import CaseInsensitiveDict

if TYPE_CHECKING:
    from typing import Any

    from .invoke import Invoker

ADD, DEL, CHECK, GC, STATUS, VERSION = "ADD", "DEL", "CHECK", "GC", "STATUS", "VERSION"
VERBS = (ADD, DEL, CHECK, GC, STATUS, VERSION)


@dataclass(frozen=True)
class PluginInfo:
    """What a plugin declares about itself; the engine enforces both fields."""

    versions: tuple[str, ...] = versions.ALL_VERSIONS
    capabilities: frozenset[str] = frozenset()
    description: str = ""


@dataclass(frozen=True)
class Invocation:
    """The CNI_* environment of one call, independent of any config."""

    command: str
    container_id: str = ""
    netns: str = ""
    ifname: str = ""
    args: CniArgs = field(default_factory=CniArgs)
    cni_path: tuple[str, ...] = ()
    extra_env: tuple[tuple[str, str], ...] = ()

    def with_command(self, command: str) -> Invocation:
        return replace(self, command=command)

    def to_env(self) -> dict[str, str]:
        """Environment for an exec'd plugin: ours inherited, CNI_* always set (as libcni does)."""
        env = dict(os.environ)
        env.update(dict(self.extra_env))
        env.update({
            "CNI_COMMAND": self.command,
            "CNI_CONTAINERID": self.container_id,
            "CNI_NETNS": self.netns,
            "CNI_IFNAME": self.ifname,
            "CNI_ARGS": self.args.render(),
            "CNI_PATH": os.pathsep.join(self.cni_path),
        })
        return env


@dataclass
class Request:
    """One plugin call: the invocation, the plugin's config, and the previous result.

    ``config`` is the plugin's stdin object (its own keys included; ``prevResult`` removed,
    see ``prev_result``). ``prev_result`` is already in ``cni_version``'s family.
    """

    invocation: Invocation
    config: dict[str, Any]
    prev_result: Result | None = None
    invoker: Invoker | None = None
    #: runtimeConfig as the caller sent it, before the engine cut it down to the capabilities
    #: this plugin declares; delegates (an IPAM) get it whole and apply their own declaration.
    delegated_runtime_config: dict[str, Any] | None = None

    @property
    def command(self) -> str:
        return self.invocation.command

    @property
    def container_id(self) -> str:
        return self.invocation.container_id

    @property
    def netns(self) -> str:
        return self.invocation.netns

    @property
    def ifname(self) -> str:
        return self.invocation.ifname

    @property
    def args(self) -> CniArgs:
        return self.invocation.args

    @property
    def cni_path(self) -> tuple[str, ...]:
        return self.invocation.cni_path

    @property
    def cni_version(self) -> str:
        return versions.normalize(self.config.get("cniVersion"))

    @property
    def network_name(self) -> str:
        return str(self.config.get("name", ""))

    @property
    def plugin_type(self) -> str:
        return str(self.config.get("type", ""))

    @property
    def runtime_config(self) -> CaseInsensitiveDict:
        return CaseInsensitiveDict(self.config.get("runtimeConfig") or {})

    @property
    def valid_attachments(self) -> list[tuple[str, str]]:
        """GC's ``cni.dev/valid-attachments`` as (containerID, ifname) pairs."""
        items = self.config.get("cni.dev/valid-attachments")
        if items is None:
            items = self.config.get("cni.dev/attachments") or []
        return [(str(i.get("containerID", "")), str(i.get("ifname", ""))) for i in items if isinstance(i, dict)]

    def result(self, **fields: Any) -> Result:
        """Build a result already labelled with this config's version."""
        return Result(cniVersion=self.cni_version, **fields)

    def delegate(self, plugin_type: str, command: str | None = None,
                 prev_result: Result | None = None) -> Result | None:
        """Run another plugin with this request's full config and environment (spec §4).

        In-tree types run in-process, others are exec'd from CNI_PATH. The returned result
        is in this config's version.
        """
        if self.invoker is None:
            raise CNIError(Code.INTERNAL, "cannot delegate", "request has no invoker")
        config = dict(self.config)
        if self.delegated_runtime_config is not None:
            config["runtimeConfig"] = self.delegated_runtime_config
        if prev_result is not None:
            config["prevResult"] = prev_result.to_wire()
        inv = self.invocation.with_command(command or self.command)
        return self.invoker.invoke(plugin_type, config, inv)

    def ipam(self, command: str | None = None) -> Result | None:
        """Delegate to the ``ipam.type`` of this config; None when the config has no IPAM."""
        ipam = self.config.get("ipam") or {}
        ipam_type = ipam.get("type") if isinstance(ipam, dict) else None
        if not ipam_type:
            return None
        return self.delegate(str(ipam_type), command)
