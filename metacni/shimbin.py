"""Where the compiled binDir shim is: the static ``metacni-shim`` binary (shim/metacni-shim.c).

The package build (setup.py) compiles it into ``metacni/_shim/``; ``make -C shim`` leaves it in
the source tree's ``shim/`` directory, which a source checkout also accepts. Importing this
module costs nothing beyond ``pathlib``; the daemon, the CLI and the tests may all use it.
"""

from __future__ import annotations

import os
from pathlib import Path

NAME = "metacni-shim"
_PACKAGE = Path(__file__).resolve().parent
#: where the package build puts the binary
PACKAGED = _PACKAGE / "_shim" / NAME
#: where ``make -C shim`` puts it in a source checkout
SOURCE_TREE = _PACKAGE.parent / "shim" / NAME


class ShimMissing(FileNotFoundError):
    """The shim binary was not built (no compiler when the package was installed)."""


def candidates() -> list[Path]:
    """The places searched, in order: ``$METACNI_SHIM_BINARY``, the package, the source tree."""
    env = os.environ.get("METACNI_SHIM_BINARY")
    return [Path(env)] if env else [PACKAGED, SOURCE_TREE]


def path() -> Path:
    """The built shim binary; :class:`ShimMissing` (with how to build it) when there is none."""
    for candidate in candidates():
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    searched = ", ".join(str(c) for c in candidates())
    raise ShimMissing(
        f"the metacni shim binary is not built (looked in {searched}); build it with "
        f"`make -C shim OUT={PACKAGED.parent}` (needs gcc and libc6-dev) or reinstall the package "
        "with a C compiler present")
