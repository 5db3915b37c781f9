"""Start a ``metacni daemon`` process (optionally inside a node netns) and drive the shim.

Used by tests, bench/ and the demo. Every daemon started here is killed by ``stop``/``kill``;
the ``daemon_proc`` context manager guarantees it even when the test fails. ``run_shim`` execs
the static shim binary (:func:`metacni.shimbin.path`) as a runtime does. Readiness comes from
the daemon's ``GET /readyz`` (:mod:`metacni.sim.unixhttp`, which the demo uses too).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from metacni import shimbin
from metacni.sim.unixhttp import readiness, status_written, unix_http


@dataclass
class DaemonProc:
    proc: subprocess.Popen[bytes]
    socket: str
    log: Path
    metrics_port: int = 0
    args: list[str] = field(default_factory=list)

    def status(self, timeout: float = 2.0) -> dict[str, Any]:
        """The daemon's readiness state; OSError when it is not serving."""
        return readiness(self.socket, timeout)

    def reaper_idle(self, timeout: float = 10.0) -> bool:
        """Wait until the daemon's link reaper has finished the deletions its DELs handed it
        (``GET /readyz?waitReaperIdle``): after that a DEL's veth is really gone."""
        _, _, body = unix_http(self.socket, "GET", f"/readyz?waitReaperIdle={timeout:g}", timeout=timeout + 10.0)
        return bool(json.loads(body)["reaper"]["idle"])

    def status_written(self, timeout: float = 10.0) -> bool:
        """Wait until the daemon has written every network-status its ADDs queued
        (``GET /readyz?waitStatusWritten``); False if some are still pending."""
        return status_written(self.socket, timeout)

    def wait_ready(self, timeout: float = 60.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        last: Any = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"daemon exited with {self.proc.returncode}:\n{self.log_text()}")
            try:
                last = self.status()
                if last.get("ready"):
                    return last
            except OSError as exc:
                last = exc
            time.sleep(0.05)
        raise TimeoutError(f"daemon not ready after {timeout}s ({last}):\n{self.log_text()}")

    def log_text(self) -> str:
        try:
            return self.log.read_text()[-5000:]
        except FileNotFoundError:
            return ""

    def log_records(self) -> list[dict[str, Any]]:
        """Every JSON record of the log (``log_text`` is only its tail, for error messages)."""
        try:
            text = self.log.read_text()
        except FileNotFoundError:
            return []
        out = []
        for line in text.splitlines():
            with contextlib.suppress(ValueError):
                out.append(json.loads(line))
        return out

    def stop(self, timeout: float = 15.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return int(self.proc.returncode)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()


def start_daemon(workdir: str | os.PathLike[str], *, netns: str | None = None, args: Sequence[str] = (),
                 python: str = sys.executable, env: Mapping[str, str] | None = None,
                 wait: bool = True) -> DaemonProc:
    """A daemon on ``workdir/run/metacni.sock``. Unless ``args`` name them (or a ``--config``), its
    pending-DEL dir, conf dir and cache dir are ``workdir/pending-del``, ``workdir/net.d`` and
    ``workdir/cni``: never the machine's own /etc/cni/net.d or /var/lib/cni."""
    work = Path(workdir)
    work.mkdir(parents=True, exist_ok=True)
    sock = str(work / "run" / "metacni.sock")
    log = work / "daemon.log"
    own: list[str] = []
    if "--config" not in args:
        for flag, default in (("--pending-dir", "pending-del"), ("--conf-dir", "net.d"), ("--cache-dir", "cni")):
            if flag not in args:
                (work / default).mkdir(exist_ok=True)
                own += [flag, str(work / default)]
    cmd = [python, "-m", "metacni", "--log-level", "INFO", "daemon", "--socket", sock, "--log-file", str(log),
           *own, *args]
    if netns:
        cmd = ["ip", "netns", "exec", netns, *cmd]
    stderr = open(work / "daemon.stderr", "ab")  # noqa: SIM115 - owned by the child
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=stderr, stderr=stderr,
                            env=dict(os.environ if env is None else env), cwd="/")
    stderr.close()
    d = DaemonProc(proc=proc, socket=sock, log=log, args=list(cmd))
    if wait:
        try:
            d.wait_ready()
        except BaseException:
            d.kill()
            raise
    return d


@contextlib.contextmanager
def daemon_proc(workdir: str | os.PathLike[str], **kwargs: Any) -> Iterator[DaemonProc]:
    d = start_daemon(workdir, **kwargs)
    try:
        yield d
    finally:
        d.kill()


def run_shim(env: Mapping[str, str], stdin: bytes, *, netns: str | None = None,
             timeout: float = 60.0) -> subprocess.CompletedProcess[bytes]:
    """Exec the static shim as the runtime would (a fresh process, CNI env, config on stdin)."""
    cmd = [str(shimbin.path())]
    if netns:
        cmd = ["ip", "netns", "exec", netns, *cmd]
    full_env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **env}
    return subprocess.run(cmd, input=stdin, env=full_env, capture_output=True, timeout=timeout, cwd="/")


def install_console_plugin(bin_dir: str | os.PathLike[str], name: str = "metacni", *,
                           aliases: Sequence[str] = (), python: str = sys.executable) -> Path:
    """Put ``metacni`` the console script (a complete CNI plugin that runs the call in-process:
    standalone mode, no daemon) into ``bin_dir`` as ``name`` plus symlinked ``aliases``, the way a
    host with the package installed (dev machine, podman, cnitool) uses it: the same three lines
    pip writes for the entry point, for ``python``. Written atomically."""
    from metacni.engine.cache import atomic_write

    target = Path(bin_dir) / name
    script = f"#!{python}\nimport sys\nfrom metacni.__main__ import main\nsys.exit(main())\n".encode()
    atomic_write(target, script, mode=0o755, dir_mode=0o755, durable=False)
    for alias in aliases:
        link = Path(bin_dir) / alias
        link.unlink(missing_ok=True)
        link.symlink_to(name)
    return target
