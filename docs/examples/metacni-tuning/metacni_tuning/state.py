"""What ADD found before changing the pod, kept per attachment so DEL can put it back.

One JSON file per attachment under ``<dataDir>/<network>/``, written atomically (temp file +
rename), named by a hash of (container id, ifname) because both may contain any of
``-._``. The file holds the identity too, which is what GC compares.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from metacni.plugin import CNIError, Code


@dataclass
class Snapshot:
    """Values of one pod interface (and the sysctls asked for) at a moment."""

    mtu: int
    mac: str
    sysctls: dict[tuple[str, ...], str] = field(default_factory=dict)

    def to_json(self) -> dict[str, object]:
        return {"mtu": self.mtu, "mac": self.mac, "sysctls": [[list(k), v] for k, v in self.sysctls.items()]}

    @classmethod
    def from_json(cls, data: dict[str, object]) -> Snapshot:
        items = data.get("sysctls") or []
        assert isinstance(items, list)
        return cls(mtu=int(str(data["mtu"])), mac=str(data["mac"]),
                   sysctls={tuple(k): str(v) for k, v in items})


class Store:
    def __init__(self, data_dir: str, network: str) -> None:
        self.dir = Path(data_dir) / network

    def _path(self, container_id: str, ifname: str) -> Path:
        digest = hashlib.sha256(f"{container_id}\0{ifname}".encode()).hexdigest()[:32]
        return self.dir / f"{digest}.json"

    def save(self, container_id: str, ifname: str, snapshot: Snapshot) -> None:
        path = self._path(container_id, ifname)
        if path.exists():
            # A second ADD would record our own values as "original" and DEL could never undo.
            raise CNIError(Code.INVALID_CONFIG, "attachment already tuned",
                           f"container {container_id!r} ifname {ifname!r}: run DEL first")
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".tmp{os.getpid()}")
            tmp.write_text(json.dumps({"containerID": container_id, "ifname": ifname, **snapshot.to_json()}))
            os.replace(tmp, path)
        except OSError as exc:
            raise CNIError(Code.IO_FAILURE, "cannot record original values", f"{path}: {exc.strerror}") from None

    def load(self, container_id: str, ifname: str) -> Snapshot | None:
        try:
            return Snapshot.from_json(json.loads(self._path(container_id, ifname).read_text()))
        except FileNotFoundError:
            return None

    def remove(self, container_id: str, ifname: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self._path(container_id, ifname).unlink()

    def gc(self, valid: set[tuple[str, str]]) -> int:
        """Drop records whose attachment is not in ``valid``; the number dropped."""
        removed = 0
        for path in sorted(self.dir.glob("*.json")) if self.dir.is_dir() else []:
            try:
                data = json.loads(path.read_text())
            except (OSError, ValueError):
                continue
            if (data.get("containerID"), data.get("ifname")) not in valid:
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
                removed += 1
        return removed
