"""Waiting on a condition with a deadline (tests never sleep to synchronise)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


def wait_for(cond: Callable[[], Any], timeout: float = 30.0, interval: float = 0.05) -> bool:
    """True as soon as ``cond()`` is truthy, False when ``timeout`` seconds pass first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(interval)
    return False
