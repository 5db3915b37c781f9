"""Console entry point: a CNI plugin when CNI_COMMAND is set, the CLI otherwise."""

from __future__ import annotations

import os
import sys


def main(argv: list[str] | None = None) -> int:
    if os.environ.get("CNI_COMMAND") and argv is None:
        from metacni.engine.skel import run_cni

        return run_cni(exits_after=True)
    from metacni.cli.main import main as cli_main

    return cli_main(sys.argv[1:] if argv is None else argv)


if __name__ == "__main__":
    sys.exit(main())
