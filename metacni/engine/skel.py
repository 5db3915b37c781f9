"""The plugin side of CNI: one dispatcher turns (environment, stdin) into a plugin call.

Exactly one JSON document reaches stdout: the result or the error. While a plugin runs,
``sys.stdout`` points at stderr, so a stray ``print`` in plugin code cannot corrupt the
protocol.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING

from metacni.spec import naming, safejson, versions
from metacni.spec.args import CniArgs
from metacni.spec.errors import CNIError, Code

from .invoke import Invoker
from .registry import Registry
from .request import ADD, CHECK, DEL, GC, STATUS, VERSION, Invocation

if TYPE_CHECKING:
    from typing import Any, BinaryIO, TextIO

log = logging.getLogger("metacni")
#: True in a process that serves exactly one CNI call and exits (the ``metacni`` console script:
#: ``run_cni(exits_after=True)``); never in the daemon. Work that needs a process outliving the
#: call (pod events) is handed off instead of queued.
one_shot = False

_REQUIRED = {
    ADD: ("CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME"),
    CHECK: ("CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME"),
    DEL: ("CNI_CONTAINERID", "CNI_IFNAME"),
    GC: (),
    STATUS: (),
}


def version_reply(stdin: bytes) -> dict[str, Any]:
    requested = ""
    with contextlib.suppress(ValueError, AttributeError):
        requested = str(safejson.loads(stdin or b"{}").get("cniVersion") or "")
    return versions.VersionReply.to(requested)


def parse_invocation(env: Mapping[str, str]) -> Invocation:
    command = env.get("CNI_COMMAND", "")
    if command not in _REQUIRED:
        raise CNIError(Code.INVALID_ENVIRONMENT, "unknown CNI_COMMAND", f"unknown CNI_COMMAND: {command}")
    missing = [name for name in _REQUIRED[command] if not env.get(name)]
    if missing:
        raise CNIError(Code.INVALID_ENVIRONMENT, "required environment variables missing",
                       f"required env variables [{','.join(missing)}] missing for {command}")
    if command in (ADD, CHECK, DEL):
        naming.check_container_id(env["CNI_CONTAINERID"])
        naming.check_ifname(env["CNI_IFNAME"])
    return Invocation(
        command=command,
        container_id=env.get("CNI_CONTAINERID", ""),
        netns=env.get("CNI_NETNS", ""),
        ifname=env.get("CNI_IFNAME", ""),
        args=CniArgs.parse(env.get("CNI_ARGS")),
        cni_path=tuple(p for p in env.get("CNI_PATH", "").split(os.pathsep) if p),
    )


def parse_config(stdin: bytes) -> dict[str, Any]:
    try:
        config = safejson.loads(stdin)
    except ValueError as exc:  # also invalid UTF-8, deep nesting, NaN (safejson)
        raise CNIError(Code.DECODE_FAILURE, "failed to decode network configuration", f"stdin: {exc}") from None
    if not isinstance(config, dict):
        raise CNIError(Code.DECODE_FAILURE, "failed to decode network configuration",
                       "stdin: top level must be a JSON object")
    naming.check_network_name(config.get("name", ""))
    version = config.get("cniVersion") or ""
    if not isinstance(version, str) or not versions.is_known(version):
        raise CNIError(Code.INCOMPATIBLE_VERSION, "incompatible CNI versions",
                       f"network {config.get('name')!r}: cniVersion {version!r} is not one of "
                       f"{', '.join(versions.ALL_VERSIONS)}")
    plugin_type = config.get("type")
    if not isinstance(plugin_type, str) or not plugin_type:
        raise CNIError(Code.INVALID_CONFIG, "invalid network configuration",
                       f"network {config.get('name')!r}: field 'type' must be a non-empty string")
    return config


def dispatch(env: Mapping[str, str], stdin: bytes, invoker: Any = None) -> dict[str, Any] | None:
    """Run one CNI call; return the JSON object to print (None for verbs with no output)."""
    if env.get("CNI_COMMAND") == VERSION:
        return version_reply(stdin)
    if env.get("CNI_COMMAND") == DEL:
        too_long = naming.over_long_only(env.get("CNI_CONTAINERID", ""), env.get("CNI_IFNAME", ""))
        if too_long:
            log.warning("DEL of container %.80s... ifname %.40s: nothing to do (%s; ADD refuses it, so nothing "
                        "was created)", env.get("CNI_CONTAINERID", ""), env.get("CNI_IFNAME", ""), too_long)
            return None
    inv = parse_invocation(env)
    config = parse_config(stdin)
    if invoker is None:
        invoker = Invoker(Registry())
    plugin_type = config["type"]
    if not invoker.registry.has(plugin_type):
        raise CNIError(Code.INVALID_CONFIG, "not an in-process plugin",
                       f"network {config.get('name')!r}: metacni has no plugin of type {plugin_type!r}")
    result = invoker.invoke(plugin_type, config, inv)
    return result.to_wire() if result is not None else None


def configure_logging(stream: TextIO | None = None) -> None:
    """Root logger to ``stream`` (stderr) at METACNI_LOG_LEVEL (WARNING by default)."""
    level = os.environ.get("METACNI_LOG_LEVEL", "WARNING").upper()
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(getattr(logging, level, logging.WARNING))


def _config_version(stdin: bytes) -> str | None:
    with contextlib.suppress(ValueError, AttributeError, TypeError):
        version = safejson.loads(stdin).get("cniVersion")
        if isinstance(version, str) and versions.is_known(version):
            return version
    return None


@contextlib.contextmanager
def stdout_to_stderr(out: TextIO) -> Iterator[None]:
    """Point stdout at stderr while plugins run, at the Python level and, when ``out`` is the
    process's real stdout, at the file-descriptor level too, so C code or a child process that
    inherits fd 1 cannot corrupt the one JSON document the runtime reads."""
    saved_fd: int | None = None
    try:
        if out is sys.__stdout__ and out.fileno() == 1:
            out.flush()
            saved_fd = os.dup(1)
            os.dup2(2, 1)
    except (OSError, ValueError):
        saved_fd = None
    try:
        with contextlib.redirect_stdout(sys.stderr):
            yield
    finally:
        if saved_fd is not None:
            os.dup2(saved_fd, 1)
            os.close(saved_fd)


def run_cni(env: Mapping[str, str] | None = None, stdin: BinaryIO | None = None,
            stdout: TextIO | None = None, invoker: Any = None, *, exits_after: bool = False) -> int:
    """Entry point for the CNI protocol; returns the exit status. ``exits_after``: the process
    ends with this call (sets :data:`one_shot`)."""
    global one_shot
    if exits_after:
        one_shot = True
    env = os.environ if env is None else env
    out = stdout or sys.stdout
    configure_logging()
    raw = b""
    try:
        source = stdin or sys.stdin.buffer
        # VERSION needs no stdin (Go's skel ignores it); read it only when one was piped in.
        if env.get("CNI_COMMAND") != VERSION or stdin is not None or not source.isatty():
            raw = source.read()
        with stdout_to_stderr(out):
            reply = dispatch(env, raw, invoker)
        status = 0
    except CNIError as exc:
        log.error("%s %s failed: %s", env.get("CNI_COMMAND"), env.get("CNI_CONTAINERID", ""), exc)
        reply, status = exc.to_dict(_config_version(raw)), 1
    except Exception as exc:  # the protocol needs a JSON error whatever went wrong
        log.exception("internal error")
        reply = CNIError(Code.INTERNAL, "internal error", f"{type(exc).__name__}: {exc}").to_dict(_config_version(raw))
        status = 1
    if reply is not None:
        out.write(json.dumps(reply) + "\n")
        out.flush()
    return status
