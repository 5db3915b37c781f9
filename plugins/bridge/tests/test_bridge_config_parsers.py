"""The bridge config's hand-written parsers against the patterns they replace."""

from __future__ import annotations

import re

from hypothesis import given
from hypothesis import strategies as st

from metacni_plugins.bridge.config import _is_mac

MAC = re.compile(r"[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}")
near_mac = st.lists(st.text(alphabet="0123456789abcdefABCDEFgG: \n", max_size=3), min_size=0, max_size=8).map(":".join)


@given(st.one_of(near_mac, st.text(max_size=20)))
def test_is_mac_is_the_pattern(text: str) -> None:
    assert _is_mac(text) == bool(MAC.fullmatch(text))


def test_is_mac_examples() -> None:
    assert _is_mac("02:aa:BB:cc:dd:ee") and not _is_mac("02:aa:bb:cc:dd:ee\n") and not _is_mac("02aabbccddee")
