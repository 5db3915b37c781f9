"""CNI_ARGS: ``K=V`` pairs joined by ``;``.

We are liberal where the Go parser is strict: a value may contain ``=`` (split on the
first one), and empty pieces (a trailing ``;``) are skipped. Order is kept because
runtimes and the libcni cache record it.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from .errors import CNIError, Code


class CniArgs(Mapping[str, str]):
    """Ordered, read-only view of CNI_ARGS. Keys are matched exactly, as the Go parser does."""

    def __init__(self, pairs: list[tuple[str, str]] | None = None) -> None:
        self.pairs: list[tuple[str, str]] = list(pairs or [])
        self._map = dict(self.pairs)

    @classmethod
    def parse(cls, text: str | None) -> CniArgs:
        pairs: list[tuple[str, str]] = []
        for piece in (text or "").split(";"):
            if not piece.strip():
                continue
            key, sep, value = piece.partition("=")
            if not sep or not key:
                raise CNIError(Code.INVALID_ENVIRONMENT, "invalid CNI_ARGS",
                               f"pair {piece!r} is not of the form KEY=VALUE")
            pairs.append((key, value))
        return cls(pairs)

    def __getitem__(self, key: str) -> str:
        return self._map[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._map)

    def __len__(self) -> int:
        return len(self._map)

    @property
    def ignore_unknown(self) -> bool:
        return self._map.get("IgnoreUnknown", "").lower() in ("1", "true")

    def with_pairs(self, updates: Mapping[str, str]) -> CniArgs:
        """A copy with keys replaced in place or appended, keeping the original order."""
        pairs = [(k, updates.get(k, v)) for k, v in self.pairs]
        seen = {k for k, _ in pairs}
        pairs.extend((k, v) for k, v in updates.items() if k not in seen)
        return CniArgs(pairs)

    def render(self) -> str:
        return ";".join(f"{k}={v}" for k, v in self.pairs)

    def __repr__(self) -> str:
        return f"CniArgs({self.pairs!r})"
