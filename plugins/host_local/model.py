"""host-local's ``ipam`` section as pydantic models (``cni_config_model``): the one place its
keys are checked.

Each range is checked on its own (subnet, addresses, in-subnet bounds) and each range set as a
whole (not empty, one family, no overlaps), so that ``metacni validate`` lists every bad one
with its JSON path; the validated section carries the parsed :data:`.ranges.RangeSet` s and
routes. :func:`.config.load` adds what comes from the call (``runtimeConfig.ipRanges``,
requested IPs) and checks the sets of all sources against each other.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BeforeValidator,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from metacni.plugin import PluginConfig, ReferenceConfig, ReferenceIPAM, Route
from metacni.spec.check import Invalid

from .ranges import Range, RangeError, RangeSet, check_disjoint, check_range_set, parse_range

DEFAULT_DATA_DIR = "/var/lib/cni/networks"


class RangeConfig(ReferenceConfig):
    """One range: ``subnet`` plus optional bounds and gateway, all inside the subnet;
    :attr:`range` is the parsed, canonical range."""

    subnet: str = Field(alias="subnet")
    range_start: str | None = Field(None, alias="rangeStart")
    range_end: str | None = Field(None, alias="rangeEnd")
    gateway: str | None = Field(None, alias="gateway")

    @field_validator("subnet")
    @classmethod
    def _subnet(cls, value: str) -> str:
        _check({"subnet": value}, "subnet")
        return value

    @field_validator("range_start", "range_end", "gateway")
    @classmethod
    def _address(cls, value: str | None, info: ValidationInfo) -> str | None:
        subnet = info.data.get("subnet")
        key = str(cls.model_fields[str(info.field_name)].alias)
        if value and subnet:
            _check({"subnet": subnet, key: value}, key)
        return value

    @model_validator(mode="after")
    def _fits(self) -> RangeConfig:
        _check({"subnet": self.subnet, "rangeStart": self.range_start, "rangeEnd": self.range_end,
                "gateway": self.gateway}, "")
        return self

    @property
    def range(self) -> Range:
        """The parsed range (parsed once by the validator, then from :func:`_parse`'s cache)."""
        return _parse(self.subnet, self.range_start, self.range_end, self.gateway)


def _check(obj: dict[str, str], key: str) -> Range:
    """:func:`.ranges.parse_range` on ``obj``; its error without the location pydantic adds."""
    try:
        return _parse(obj.get("subnet"), obj.get("rangeStart"), obj.get("rangeEnd"), obj.get("gateway"))
    except RangeError as exc:
        raise ValueError(str(exc).removeprefix(f"range.{key}: " if key else "range: ")) from None


@lru_cache(maxsize=1024)
def _parse(subnet: str | None, start: str | None, end: str | None, gateway: str | None) -> Range:
    """:func:`.ranges.parse_range`, cached: ranges are immutable, a daemon sees the same few
    again and again, and the field checks, the whole range and :attr:`RangeConfig.range` each
    ask for one."""
    obj = {"subnet": subnet, "rangeStart": start, "rangeEnd": end, "gateway": gateway}
    return parse_range({k: v for k, v in obj.items() if v is not None}, "range")


def _range_set(items: list[RangeConfig]) -> list[RangeConfig]:
    try:
        check_range_set(tuple(item.range for item in items), "")
    except RangeError as exc:
        raise ValueError(str(exc).removeprefix(": ")) from None
    return items


#: a range set: one or more ranges of one family that do not overlap
RangeSetConfig = Annotated[list[RangeConfig], AfterValidator(_range_set)]


def _route(value: Any) -> Any:
    """A route object as the result's :class:`~metacni.plugin.Route` (its own checks)."""
    if isinstance(value, dict):
        try:
            return Route.model_validate(value)
        except Invalid as exc:
            raise ValueError(str(exc).removeprefix("$.")) from None
    return value


class LocationIPAM(ReferenceIPAM):
    """What every verb needs: where the leases are, and the resolv.conf to report."""

    data_dir: str = Field(DEFAULT_DATA_DIR, alias="dataDir")
    resolv_conf: str | None = Field(None, alias="resolvConf")

    @field_validator("data_dir")
    @classmethod
    def _data_dir(cls, value: str) -> str:
        return value or DEFAULT_DATA_DIR

    @field_validator("resolv_conf")
    @classmethod
    def _resolv_conf(cls, value: str | None) -> str | None:
        return value or None


class HostLocalIPAM(LocationIPAM):
    """The ``ipam`` object of a host-local network; :attr:`range_sets` are the legacy single
    range (``subnet`` ...) first, then ``ranges``, checked not to overlap each other."""

    ranges: list[RangeSetConfig] | None = Field(None, alias="ranges")
    subnet: str | None = Field(None, alias="subnet")
    range_start: str | None = Field(None, alias="rangeStart")
    range_end: str | None = Field(None, alias="rangeEnd")
    gateway: str | None = Field(None, alias="gateway")
    routes: list[Annotated[Route, BeforeValidator(_route)]] | None = Field(None, alias="routes")

    @model_validator(mode="after")
    def _sets(self) -> HostLocalIPAM:
        if self.subnet:
            RangeConfig.model_validate({"subnet": self.subnet, "rangeStart": self.range_start,
                                        "rangeEnd": self.range_end, "gateway": self.gateway})
        try:
            check_disjoint(self.range_sets)
        except RangeError as exc:
            raise ValueError(str(exc)) from None
        return self

    @property
    def range_sets(self) -> tuple[RangeSet, ...]:
        """The legacy single range first, then ``ranges`` (each range from :func:`_parse`'s cache)."""
        sets = [tuple(item.range for item in items) for items in self.ranges or []]
        if self.subnet:
            sets.insert(0, (_parse(self.subnet, self.range_start, self.range_end, self.gateway),))
        return tuple(sets)


class HostLocalLocation(PluginConfig):
    """A network object as host-local's DEL, CHECK, GC and STATUS read it."""

    ipam: LocationIPAM


class HostLocalConfig(PluginConfig):
    """A network object as host-local's ADD reads it: only its ``ipam`` section is host-local's."""

    ipam: HostLocalIPAM
