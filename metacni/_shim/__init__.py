"""Holds the compiled binDir shim, ``metacni-shim`` (built from shim/metacni-shim.c by setup.py)."""
