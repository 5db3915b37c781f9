"""portmap's stdin keys as a pydantic model (``cni_config_model``): the one place they are
checked, the option conflicts of the reference included. The port mappings themselves come
from runtimeConfig and are checked by :mod:`metacni.firewall.portmap`.

Conflicts: ``externalSetMarkChain`` excludes ``markMasqBit`` and belongs to iptables;
condition tokens are iptables syntax when the first starts with ``-`` or ``!``, else nft
syntax. Without an explicit ``backend``, those options pick the backend they belong to
(:attr:`PortmapConfig.firewall`); with a contradicting explicit backend they are an error.
"""

from __future__ import annotations

from pydantic import Field, ValidationInfo, field_validator, model_validator

from metacni.firewall import conditions
from metacni.firewall.backend import IPTABLES, NFTABLES
from metacni.plugin import CNIError, FirewallConfig

DEFAULT_MARK_BIT = 13


class PortmapConfig(FirewallConfig):
    """The reference portmap's keys."""

    snat: bool = Field(True, alias="snat")
    masq_all: bool = Field(False, alias="masqAll")
    external_mark_chain: str | None = Field(None, alias="externalSetMarkChain")
    mark_masq_bit: int | None = Field(None, ge=0, le=31, alias="markMasqBit")
    conditions_v4: list[str] = Field(default_factory=list, alias="conditionsV4")
    conditions_v6: list[str] = Field(default_factory=list, alias="conditionsV6")

    @field_validator("external_mark_chain")
    @classmethod
    def _chain(cls, value: str | None) -> str | None:
        if value == "":
            raise ValueError("expected a chain name")
        return value

    @field_validator("conditions_v4", "conditions_v6")
    @classmethod
    def _conditions(cls, tokens: list[str], info: ValidationInfo) -> list[str]:
        """nft syntax is translated now, iptables syntax checked to be matches only (tenant input)."""
        where = str(cls.model_fields[str(info.field_name)].alias)
        try:
            if conditions.syntax(tuple(tokens)) == NFTABLES:
                conditions.nft_matches(tuple(tokens), where)
            elif tokens:
                conditions.check_iptables_tokens(tuple(tokens), where)
        except CNIError as exc:
            raise ValueError(exc.details.removeprefix(f"{where}: ")) from None
        return tokens

    @model_validator(mode="after")
    def _backends(self) -> PortmapConfig:
        if self.external_mark_chain and self.mark_masq_bit is not None:
            raise ValueError("externalSetMarkChain cannot be combined with markMasqBit")
        if self.external_mark_chain and self.backend == NFTABLES:
            raise ValueError('externalSetMarkChain is iptables-only and cannot be used with backend "nftables"')
        for name, tokens in (("conditionsV4", self.conditions_v4), ("conditionsV6", self.conditions_v6)):
            syntax = conditions.syntax(tuple(tokens))
            if syntax is not None and self.backend and syntax != self.backend:
                raise ValueError(f"{name}: {syntax} syntax cannot be used with backend {self.backend!r}")
        if len(self._implied()) > 1:
            raise ValueError("conditionsV4: options of both backends given (iptables and nftables)")
        return self

    def _implied(self) -> set[str]:
        """The backends the options belong to: iptables for externalSetMarkChain, the conditions' syntax."""
        found = {IPTABLES} if self.external_mark_chain else set()
        for tokens in (self.conditions_v4, self.conditions_v6):
            syntax = conditions.syntax(tuple(tokens))
            if syntax is not None:
                found.add(syntax)
        return found

    @property
    def firewall(self) -> str | None:
        """The backend asked for, else the one the options belong to, else None (detect)."""
        return self.backend or next(iter(self._implied()), None)

    @property
    def mark_bit(self) -> int:
        return DEFAULT_MARK_BIT if self.mark_masq_bit is None else self.mark_masq_bit
