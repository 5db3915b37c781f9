"""Translate a DaemonSet's pod template into ``podman run`` arguments, for the node test.

Only what conf/daemonset.yaml uses is supported, and anything else in a container spec is an
error rather than silently dropped, so the test runs the containers exactly as the manifest
says: command/args, env (values and ``fieldRef`` spec.nodeName), hostPath volumes (with their
``type``: DirectoryOrCreate/FileOrCreate are created first), mountPropagation, readOnly,
hostNetwork, hostPID, securityContext (privileged, capabilities add/drop) and exec probes.
Nothing here touches the filesystem: :attr:`PodmanContainer.host_paths` lists what kubelet
would create (DirectoryOrCreate/FileOrCreate), for the caller to create where podman runs.
What kubelet adds on its own (the service-account mount and KUBERNETES_SERVICE_HOST/PORT) is
passed in by the caller as ``extra_volumes``/``extra_env``.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

#: container keys the translation understands (others raise :class:`Unsupported`)
KNOWN_CONTAINER_KEYS = frozenset({"name", "image", "command", "args", "env", "securityContext", "resources",
                                  "volumeMounts", "livenessProbe", "readinessProbe"})
PROPAGATION = {None: "rprivate", "None": "rprivate", "HostToContainer": "rslave", "Bidirectional": "rshared"}


class Unsupported(ValueError):
    """The manifest uses something this translation does not implement."""


@dataclass
class PodmanContainer:
    """One container of the pod template, as ``podman run`` arguments."""

    name: str
    image: str
    options: list[str] = field(default_factory=list)
    argv: list[str] = field(default_factory=list)
    probes: dict[str, list[str]] = field(default_factory=dict)  # "liveness"/"readiness" -> exec argv
    host_paths: list[tuple[str, str]] = field(default_factory=list)  # (path, "Directory" | "File") to create

    def run_args(self, container_name: str, image: str | None = None, *, detach: bool) -> list[str]:
        """``podman run`` arguments; ``image`` replaces the manifest's (the test's build tag)."""
        mode = ["-d"] if detach else ["--rm"]
        return ["run", *mode, "--name", container_name, *self.options, "--entrypoint", self.argv[0],
                image or self.image, *self.argv[1:]]

    def describe(self, container_name: str, image: str | None = None, *, detach: bool) -> str:
        return "podman " + shlex.join(self.run_args(container_name, image, detach=detach))


def load_daemonset(path: str | os.PathLike[str]) -> dict[str, Any]:
    docs = [d for d in yaml.safe_load_all(Path(path).read_text()) if d]
    [ds] = [d for d in docs if d.get("kind") == "DaemonSet"]
    return dict(ds)


def _env(container: Mapping[str, Any], node_name: str) -> list[str]:
    out: list[str] = []
    for item in container.get("env") or []:
        if "value" in item:
            value = str(item["value"])
        elif (item.get("valueFrom") or {}).get("fieldRef", {}).get("fieldPath") == "spec.nodeName":
            value = node_name
        else:
            raise Unsupported(f"env {item.get('name')}: only value and fieldRef spec.nodeName are supported")
        out += ["--env", f"{item['name']}={value}"]
    return out


def _security(container: Mapping[str, Any]) -> list[str]:
    sc = dict(container.get("securityContext") or {})
    out: list[str] = []
    if sc.pop("privileged", False):
        out.append("--privileged")
    caps = sc.pop("capabilities", None) or {}
    for cap in caps.get("drop") or []:
        out += ["--cap-drop", str(cap).lower() if cap == "ALL" else f"CAP_{cap}"]
    for cap in caps.get("add") or []:
        out += ["--cap-add", f"CAP_{cap}"]
    if sc.pop("readOnlyRootFilesystem", False):
        out.append("--read-only")
    if sc:
        raise Unsupported(f"securityContext keys {sorted(sc)}")
    return out


def _volumes(container: Mapping[str, Any], volumes: Mapping[str, Any],
             create: list[tuple[str, str]]) -> list[str]:
    out: list[str] = []
    for mount in container.get("volumeMounts") or []:
        volume = volumes[mount["name"]]
        host_path = volume.get("hostPath")
        if host_path is None:
            raise Unsupported(f"volume {mount['name']}: only hostPath volumes are supported")
        path, kind = host_path["path"], host_path.get("type", "")
        if kind in ("DirectoryOrCreate", "FileOrCreate"):
            create.append((path, kind.removesuffix("OrCreate")))
        elif kind not in ("", "Directory", "File", "Socket"):
            raise Unsupported(f"hostPath type {kind}")
        opts = ["ro" if mount.get("readOnly") else "rw", PROPAGATION[mount.get("mountPropagation")]]
        out += ["--volume", f"{path}:{mount['mountPath']}:{','.join(opts)}"]
    return out


def _probe(probe: Mapping[str, Any] | None) -> list[str] | None:
    if not probe:
        return None
    if "exec" not in probe:
        raise Unsupported("only exec probes are supported")
    return [str(a) for a in probe["exec"]["command"]]


def containers(ds: Mapping[str, Any], *, node_name: str, extra_volumes: Sequence[str] = (),
               extra_env: Mapping[str, str] | None = None) -> dict[str, PodmanContainer]:
    """The pod template's init containers and containers by name, in order (init first)."""
    spec = ds["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in spec.get("volumes") or []}
    pod_opts: list[str] = []
    if spec.get("hostNetwork"):
        pod_opts += ["--network", "host"]
    if spec.get("hostPID"):
        pod_opts += ["--pid", "host"]
    grace = spec.get("terminationGracePeriodSeconds")
    if grace is not None:
        pod_opts += ["--stop-timeout", str(grace)]
    kubelet = [a for v in extra_volumes for a in ("--volume", v)]
    kubelet += [a for k, v in (extra_env or {}).items() for a in ("--env", f"{k}={v}")]
    out: dict[str, PodmanContainer] = {}
    for c in [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]:
        unknown = set(c) - KNOWN_CONTAINER_KEYS
        if unknown:
            raise Unsupported(f"container {c['name']}: keys {sorted(unknown)}")
        argv = [*(c.get("command") or []), *(c.get("args") or [])]
        if not argv:
            raise Unsupported(f"container {c['name']}: no command (the image has no entrypoint)")
        create: list[tuple[str, str]] = []
        opts = [*pod_opts, *_security(c), *_env(c, node_name), *_volumes(c, volumes, create), *kubelet]
        probes = {kind: argv_ for kind in ("liveness", "readiness")
                  if (argv_ := _probe(c.get(f"{kind}Probe"))) is not None}
        out[c["name"]] = PodmanContainer(c["name"], c["image"], opts, [str(a) for a in argv], probes, create)
    return out
