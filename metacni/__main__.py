"""Console entry point: a CNI plugin when CNI_COMMAND is set, the CLI otherwise."""

from __future__ import annotations

import gc
import os
import sys


def main(argv: list[str] | None = None) -> int:
    if os.environ.get("CNI_COMMAND") and argv is None:
        return one_cni_call()
    from metacni.cli.main import main as cli_main

    return cli_main(sys.argv[1:] if argv is None else argv)


def one_cni_call() -> int:
    """Serve the one CNI call this process exists for (standalone mode); returns the exit status.

    The process ends with the call, and the OS frees its memory: the cyclic garbage collector is
    off for its lifetime, and what is live at the end is frozen so the interpreter's teardown does
    not traverse it either (docs/design/1605-one-shot-process-gc.md). Must run before
    ``metacni.engine.skel`` is imported: most collections would happen while pydantic builds its
    models. Objects are still freed by reference counting, and ``atexit`` handlers still run.
    """
    gc.disable()
    from metacni.engine.skel import run_cni

    try:
        return run_cni(exits_after=True)
    finally:
        gc.freeze()


if __name__ == "__main__":
    sys.exit(main())
