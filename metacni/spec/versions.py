"""CNI spec versions, their result families, and version negotiation (libcni's rules)."""

from __future__ import annotations

from collections.abc import Iterable

from pydantic import BaseModel, ConfigDict, Field

ALL_VERSIONS: tuple[str, ...] = ("0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0")
CURRENT = "1.1.0"

FAMILY_020 = "0.2.0"
FAMILY_040 = "0.4.0"
FAMILY_100 = "1.0.0"

_FAMILIES = {
    "0.1.0": FAMILY_020,
    "0.2.0": FAMILY_020,
    "0.3.0": FAMILY_040,
    "0.3.1": FAMILY_040,
    "0.4.0": FAMILY_040,
    "1.0.0": FAMILY_100,
    "1.1.0": FAMILY_100,
}


def normalize(version: str | None) -> str:
    """An empty or missing cniVersion means 0.1.0, as in libcni."""
    return version or "0.1.0"


def is_known(version: str | None) -> bool:
    return normalize(version) in _FAMILIES


def family(version: str | None) -> str:
    """The result family a version belongs to; raises KeyError for unknown versions."""
    return _FAMILIES[normalize(version)]


def parse(version: str) -> tuple[int, int, int]:
    """Parse ``X.Y.Z`` (``X.Y`` and ``X`` are padded) into a comparable tuple."""
    parts = version.strip().split(".")
    if not 1 <= len(parts) <= 3 or not all(p.isdigit() for p in parts):
        raise ValueError(f"invalid version {version!r}: expected X.Y.Z")
    nums = [int(p) for p in parts] + [0] * (3 - len(parts))
    return nums[0], nums[1], nums[2]


def at_least(version: str | None, minimum: str) -> bool:
    return parse(normalize(version)) >= parse(minimum)


def negotiate(cni_version: str | None, cni_versions: Iterable[str] | None) -> str:
    """Pick the list version: with ``cniVersions`` the highest one we support, else ``cniVersion``.

    Mirrors libcni: ``cniVersion`` is merged into the list, entries above 1.1.0 are dropped,
    an unparsable entry is an error. Without ``cniVersions`` the value is kept verbatim.
    """
    if cni_versions is None:
        return cni_version or ""
    candidates = list(cni_versions)
    if cni_version:
        candidates.append(cni_version)
    best: tuple[tuple[int, int, int], str] | None = None
    for candidate in candidates:
        key = parse(candidate)
        if key > parse(CURRENT):
            continue
        if best is None or key > best[0]:
            best = (key, candidate)
    return best[1] if best else ""


class VersionReply(BaseModel):
    """The answer to ``CNI_COMMAND=VERSION``: the requested version when known, else ours."""

    model_config = ConfigDict(populate_by_name=True)

    cni_version: str = Field(alias="cniVersion")
    supported_versions: list[str] = Field(default_factory=lambda: list(ALL_VERSIONS), alias="supportedVersions")

    @classmethod
    def to(cls, requested: str) -> dict[str, object]:
        """The reply's JSON object for a request naming ``requested`` ("" when none)."""
        version = requested if requested and is_known(requested) else CURRENT
        return cls(cni_version=version).model_dump(by_alias=True)
