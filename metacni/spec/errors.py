"""CNI error objects and the well-known error codes."""

from __future__ import annotations

import json
from typing import Any, Final

from pydantic import BaseModel, ConfigDict, Field


class Code:
    """The spec's error codes, as plain ints (they go on the wire as JSON numbers)."""

    UNKNOWN: Final = 0
    INCOMPATIBLE_VERSION: Final = 1
    UNSUPPORTED_FIELD: Final = 2
    UNKNOWN_CONTAINER: Final = 3
    INVALID_ENVIRONMENT: Final = 4
    IO_FAILURE: Final = 5
    DECODE_FAILURE: Final = 6
    INVALID_CONFIG: Final = 7
    INVALID_NETNS: Final = 8
    TRY_AGAIN_LATER: Final = 11
    NOT_AVAILABLE: Final = 50
    LIMITED_CONNECTIVITY: Final = 51
    INTERNAL: Final = 999


class ErrorReply(BaseModel):
    """The spec's error object on the wire; ``cniVersion`` and ``details`` only when set."""

    model_config = ConfigDict(populate_by_name=True)

    cni_version: str | None = Field(default=None, alias="cniVersion")
    code: int
    msg: str
    details: str | None = None


class CNIError(Exception):
    """An error that is printed on stdout as the spec's error object.

    ``msg`` is the short reason; ``details`` carries names (field, pod, network) so an
    operator can act on it without reading logs.
    """

    def __init__(self, code: int, msg: str, details: str = "") -> None:
        super().__init__(f"{msg}: {details}" if details else msg)
        self.code = int(code)
        self.msg = msg
        self.details = details

    def to_dict(self, cni_version: str | None = None) -> dict[str, Any]:
        reply = ErrorReply(cni_version=cni_version or None, code=self.code, msg=self.msg,
                           details=self.details or None)
        return reply.model_dump(by_alias=True, exclude_none=True)

    def to_json(self, cni_version: str | None = None) -> str:
        return json.dumps(self.to_dict(cni_version))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CNIError:
        code = data.get("code", 0)
        return cls(int(code) if isinstance(code, int | str) and str(code).isdigit() else 0,
                   str(data.get("msg", "")), str(data.get("details", "") or ""))

    def __repr__(self) -> str:
        return f"CNIError(code={self.code}, msg={self.msg!r}, details={self.details!r})"


def invalid_config(msg: str, details: str = "") -> CNIError:
    return CNIError(Code.INVALID_CONFIG, msg, details)
