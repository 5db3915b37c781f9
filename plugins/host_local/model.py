"""host-local's ``ipam`` section as pydantic models (``cni_config_model``).

Each range is checked on its own here (subnet, addresses, in-subnet bounds) so that
``metacni validate`` lists every bad range; :mod:`.config` still merges the sources
(CNI_ARGS, runtimeConfig) and checks overlaps across sets, which need the whole request.
"""

from __future__ import annotations

import ipaddress

from pydantic import field_validator, model_validator

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
        ipaddress.ip_network(value, strict=False)  # ValueError names the value
        return value

    @field_validator("rangeStart", "rangeEnd", "gateway")
    @classmethod
    def _address(cls, value: str | None) -> str | None:
        if value:
            ipaddress.ip_address(value)
        return value

    @model_validator(mode="after")
    def _fits(self) -> RangeConfig:
        try:
            parse_range(self.model_dump(exclude_none=True), "range")
        except RangeError as exc:
            raise ValueError(str(exc).removeprefix("range.").removeprefix("range: ")) from None
        return self


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
