"""DELs the shim recorded while the daemon was down, carried out when it is back.

The shim writes each such DEL atomically as ``<pending dir>/<container id>.<ifname>.<hash>.json``
(:func:`metacni.daemon.protocol.record_name`: bounded under NAME_MAX, one per attachment): the
exact POST /cni body it could not deliver (:mod:`metacni.daemon.protocol`). Replay reads the
container id and ifname from the body, never from the name, so any ``*.json`` name is replayed
(records of an older shim included). The daemon calls
:meth:`PendingDels.replay` once before its socket accepts requests, and again every GC period:

- a record whose DEL succeeds is deleted;
- a record whose DEL fails stays (and is logged) for the next pass;
- a record that is not a valid DEL request (not JSON, wrong shape, not a DEL, ids the spec
  rules out) is moved to ``<pending dir>/corrupt/`` so it is neither lost nor retried forever.

Only ``*.json`` files are records: a shim's temporary file (``.<record>.<pid>.tmp``) is left
alone while it may still be written, and removed once it is ten minutes old.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from metacni.engine.skel import parse_invocation
from metacni.spec import naming
from metacni.spec.errors import CNIError

from .protocol import CNIRequest, decode_request

log = logging.getLogger(__name__)
RunDel = Callable[[CNIRequest], tuple[bool, str]]  # -> (succeeded, the CNI error text when not)
MAX_RECORD = 2 * 1024 * 1024
STALE_TEMP = 600.0  # seconds


@dataclass
class ReplayStats:
    done: int = 0
    failed: int = 0
    corrupt: int = 0

    @property
    def left(self) -> int:
        return self.failed


class PendingDels:
    def __init__(self, directory: str | os.PathLike[str], run_del: RunDel) -> None:
        self.dir = Path(directory)
        self.run_del = run_del
        self._lock = threading.Lock()  # one pass at a time (start-up, then the periodic loop)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.on_pass: Callable[[ReplayStats], None] = lambda stats: None

    def start(self, period: float) -> None:
        """Retry what is left every ``period`` seconds (0: never), in a background thread."""
        if period > 0 and self._thread is None:
            self._thread = threading.Thread(target=self._loop, args=(period,), name="pending-dels", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _loop(self, period: float) -> None:
        while not self._stop.wait(period):
            try:
                if self.records():
                    self.replay()
            except Exception:
                log.exception("retrying pending DELs failed")

    def records(self) -> list[Path]:
        try:
            names = sorted(os.listdir(self.dir))
        except FileNotFoundError:
            return []
        self._drop_stale_temps(names)
        return [self.dir / n for n in names if n.endswith(".json") and (self.dir / n).is_file()]

    def _drop_stale_temps(self, names: list[str]) -> None:
        """A shim killed while writing leaves ``.<record>.<pid>.tmp``; its DEL was reported
        failed (the runtime retries), so an old one is only litter."""
        now = time.time()
        for n in names:
            if n.startswith(".") and n.endswith(".tmp"):
                with contextlib.suppress(OSError):
                    if now - os.stat(self.dir / n).st_mtime > STALE_TEMP:
                        os.unlink(self.dir / n)
                        log.info("removed a stale pending-DEL temp file", extra={"file": n})

    def replay(self) -> ReplayStats:
        """One pass over every record; errors are logged, never raised."""
        stats = ReplayStats()
        with self._lock:
            for path in self.records():
                try:
                    self._one(path, stats)
                except Exception:
                    stats.failed += 1
                    log.exception("pending DEL %s: replay crashed; kept for the next pass", path.name)
        self.on_pass(stats)
        if stats.done or stats.failed or stats.corrupt:
            log.info("replayed pending DELs", extra={"done": stats.done, "failed": stats.failed,
                                                     "corrupt": stats.corrupt, "dir": str(self.dir)})
        return stats

    def _one(self, path: Path, stats: ReplayStats) -> None:
        try:
            with open(path, "rb") as f:
                raw = f.read(MAX_RECORD + 1)
        except FileNotFoundError:
            return  # replayed by a concurrent pass or removed by hand
        try:
            if len(raw) > MAX_RECORD:
                raise CNIError(7, "record too large", f"over {MAX_RECORD} bytes")
            request = decode_request(raw)
            if request.command != "DEL":
                raise CNIError(7, "not a DEL", f"CNI_COMMAND is {request.command!r}")
            env = request.env
            if not naming.over_long_only(env.get("CNI_CONTAINERID", ""), env.get("CNI_IFNAME", "")):
                parse_invocation(env)  # ids the spec rules out: this DEL could never succeed
        except CNIError as exc:
            self._quarantine(path, str(exc))
            stats.corrupt += 1
            return
        ok, why = self.run_del(request)
        if ok:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
            stats.done += 1
            log.info("pending DEL carried out", extra={"record": path.name, "container": request.container_id,
                                                        "ifname": request.env.get("CNI_IFNAME", "")})
        else:
            stats.failed += 1
            log.warning("pending DEL failed; kept for the next pass",
                        extra={"record": path.name, "container": request.container_id, "error": why})

    def _quarantine(self, path: Path, why: str) -> None:
        corrupt = self.dir / "corrupt"
        corrupt.mkdir(mode=0o700, exist_ok=True)
        target = corrupt / path.name
        if target.exists():
            target = corrupt / f"{path.stem}.{time.time_ns()}.json"
        os.replace(path, target)
        log.error("pending DEL record is not a valid DEL request; moved aside",
                  extra={"record": path.name, "to": str(target), "error": why})
