"""host-local's ``ipam`` section as pydantic models (``cni_config_model``).

Each range is checked on its own here (subnet, addresses, in-subnet bounds) so that
``metacni validate`` lists every bad range; :mod:`.config` still merges the sources
(CNI_ARGS, runtimeConfig) and checks overlaps across sets, which need the whole request.
"""

from __future__ import annotations

from pydantic import ValidationInfo, field_validator, model_validator

from metacni.plugin import IPAMSection, PluginConfig, Route
from metacni.spec.check import Invalid

from .ranges import RangeError, parse_range


class RangeConfig(PluginConfig):
    """One range: ``subnet`` plus optional bounds and gateway, all inside the subnet."""

    subnet: str
    rangeStart: str | None = None
    rangeEnd: str | None = None
    gateway: str | None = None

    @field_validator("subnet")
    @classmethod
    def _subnet(cls, value: str) -> str:
        _check({"subnet": value}, "subnet")
        return value

    @field_validator("rangeStart", "rangeEnd", "gateway")
    @classmethod
    def _address(cls, value: str | None, info: ValidationInfo) -> str | None:
        subnet = info.data.get("subnet")
        if value and subnet:
            _check({"subnet": subnet, str(info.field_name): value}, str(info.field_name))
        return value

    @model_validator(mode="after")
    def _fits(self) -> RangeConfig:
        _check(self.model_dump(exclude_none=True), "")
        return self


def _check(obj: dict[str, str], key: str) -> None:
    """:func:`.ranges.parse_range` on ``obj``; its error without the location pydantic adds."""
    try:
        parse_range(obj, "range")
    except RangeError as exc:
        raise ValueError(str(exc).removeprefix(f"range.{key}: " if key else "range: ")) from None


class RouteConfig(PluginConfig):
    """One route of ``ipam.routes``, checked as the result's :class:`~metacni.plugin.Route`."""

    dst: str
    gw: str | None = None

    @model_validator(mode="after")
    def _route(self) -> RouteConfig:
        try:
            Route.model_validate(self.model_dump(exclude_none=True))
        except Invalid as exc:
            raise ValueError(str(exc).removeprefix("$.")) from None
        return self


class HostLocalIPAM(IPAMSection):
    """The ``ipam`` object of a host-local network."""

    ranges: list[list[RangeConfig]] | None = None
    subnet: str | None = None
    rangeStart: str | None = None
    rangeEnd: str | None = None
    gateway: str | None = None
    routes: list[RouteConfig] | None = None
    dataDir: str | None = None
    resolvConf: str | None = None

    @model_validator(mode="after")
    def _legacy_range(self) -> HostLocalIPAM:
        if self.subnet:
            RangeConfig.model_validate({"subnet": self.subnet, "rangeStart": self.rangeStart,
                                        "rangeEnd": self.rangeEnd, "gateway": self.gateway})
        return self


class HostLocalConfig(PluginConfig):
    """A network object as host-local reads it: only its ``ipam`` section is host-local's."""

    ipam: HostLocalIPAM
