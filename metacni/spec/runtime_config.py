"""runtimeConfig with case-insensitive keys.

containerd's go-cni structs have no JSON tags, so it sends ``HostPort``, ``Servers``,
``IngressRate``; CRI-O sends camelCase. Go plugins cope because encoding/json matches keys
case-insensitively; this mapping gives Python plugins the same behaviour at every depth.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any


def _wrap(value: Any) -> Any:
    if isinstance(value, Mapping) and not isinstance(value, CaseInsensitiveDict):
        return CaseInsensitiveDict(value)
    if isinstance(value, list):
        return [_wrap(v) for v in value]
    return value


# "Any" quoted: a base class is evaluated at import, when typing is not imported.
class CaseInsensitiveDict(Mapping[str, "Any"]):
    """Read-only mapping; lookups ignore case, iteration yields the keys as sent."""

    def __init__(self, data: Mapping[str, Any] | None = None) -> None:
        self._items: dict[str, tuple[str, Any]] = {}
        for key, value in (data or {}).items():
            self._items[key.lower()] = (key, _wrap(value))

    def __getitem__(self, key: str) -> Any:
        return self._items[key.lower()][1]

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and key.lower() in self._items

    def __iter__(self) -> Iterator[str]:
        return (original for original, _ in self._items.values())

    def __len__(self) -> int:
        return len(self._items)

    def to_plain(self) -> dict[str, Any]:
        def plain(v: Any) -> Any:
            if isinstance(v, CaseInsensitiveDict):
                return v.to_plain()
            if isinstance(v, list):
                return [plain(x) for x in v]
            return v

        return {orig: plain(value) for orig, value in self._items.values()}

    def __repr__(self) -> str:
        return f"CaseInsensitiveDict({self.to_plain()!r})"
