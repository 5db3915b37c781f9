"""Running an ordinary CNI binary from CNI_PATH, as libcni's ``invoke`` package does."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import signal
import subprocess
import time
from collections.abc import Iterable
from logging import getLogger
from pathlib import Path
from typing import TYPE_CHECKING

from metacni.spec.errors import CNIError, Code

if TYPE_CHECKING:
    from typing import Any

log = getLogger(__name__)

DEFAULT_TIMEOUT = 60.0
TEXT_FILE_BUSY_RETRIES = 5


def find_plugin(plugin_type: str, cni_path: Iterable[str]) -> Path:
    """The first regular file ``<dir>/<type>`` along CNI_PATH (empty entries skipped)."""
    dirs = [d for d in cni_path if d]  # CNI_PATH's entries, as strings: the error names them
    if not plugin_type or "/" in plugin_type or plugin_type in (".", ".."):
        raise CNIError(Code.INVALID_CONFIG, "invalid plugin type", f"type {plugin_type!r} is not a plugin name")
    for directory in dirs:
        candidate = Path(directory, plugin_type)
        if candidate.is_file():
            return candidate
    raise CNIError(Code.INVALID_CONFIG, "plugin not found",
                   f"failed to find plugin {plugin_type!r} in path {dirs}; it is neither an in-process "
                   "metacni plugin nor a binary in CNI_PATH")


def exec_plugin(path: str | os.PathLike[str], stdin: bytes, env: dict[str, str], *,
                timeout: float = DEFAULT_TIMEOUT) -> bytes:
    """Run the plugin and return its stdout; a failure becomes the CNIError it printed.

    The plugin runs in its own process group so a timeout kills it and anything it forked.
    Its stderr is passed through to ours, as the spec asks for delegates.
    """
    plugin = Path(path).name
    command = env.get("CNI_COMMAND", "")
    for attempt in range(TEXT_FILE_BUSY_RETRIES):
        try:
            proc = subprocess.Popen([path], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, env=env, start_new_session=True)
            break
        except OSError as exc:
            if exc.errno == errno.ETXTBSY and attempt + 1 < TEXT_FILE_BUSY_RETRIES:
                time.sleep(1.0)  # libcni waits one second between tries of a busy binary
                continue
            raise CNIError(Code.IO_FAILURE, f"cannot execute plugin {plugin!r}", f"{path}: {exc.strerror}") from None
    try:
        out, err = proc.communicate(stdin, timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        proc.communicate()
        raise CNIError(Code.TRY_AGAIN_LATER, f"plugin {plugin!r} timed out",
                       f"{command} did not finish within {timeout:g}s; the process was killed") from None
    if err:
        log.info("plugin %s %s stderr: %s", plugin, command, err.decode(errors="replace").rstrip())
    if proc.returncode == 0:
        return out
    raise _plugin_error(plugin, command, out, err, proc.returncode)


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)


def _plugin_error(plugin: str, command: str, out: bytes, err: bytes, status: int) -> CNIError:
    text = out.strip()
    if not text:
        stderr = err.decode(errors="replace").strip()
        detail = f"{plugin} {command} exited with status {status}"
        if stderr:
            return CNIError(Code.UNKNOWN, f"netplugin failed: {stderr!r}", detail)
        return CNIError(Code.UNKNOWN, "netplugin failed with no error message", detail)
    try:
        data: Any = json.loads(text)
    except ValueError:
        data = None
    if not isinstance(data, dict) or "code" not in data and "msg" not in data:
        snippet = text[:200].decode(errors="replace")
        return CNIError(Code.UNKNOWN, "netplugin failed but error parsing its diagnostic message",
                        f"{plugin} {command} printed {snippet!r}")
    error = CNIError.from_dict(data)
    if not error.details:
        error.details = f"from plugin {plugin!r}"
    return error


def decode_output(plugin: str, out: bytes) -> dict[str, Any]:
    try:
        data = json.loads(out)
    except ValueError:
        snippet = out[:200].decode(errors="replace")
        raise CNIError(Code.DECODE_FAILURE, f"plugin {plugin!r} printed an invalid result",
                       f"not JSON: {snippet!r}") from None
    if not isinstance(data, dict):
        raise CNIError(Code.DECODE_FAILURE, f"plugin {plugin!r} printed an invalid result", "not a JSON object")
    return data
