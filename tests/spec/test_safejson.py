"""metacni.spec.safejson and the identifier rules: every decoder failure is a ValueError, and
names that become file names stay whole and short (issue #14 item 5)."""

from __future__ import annotations

import contextlib
import json
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from metacni.spec import naming, safejson

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4), max_leaves=20)


@given(JSON_VALUES)
def test_valid_json_decodes_as_json_does(value):
    text = json.dumps(value)
    assert safejson.loads(text) == json.loads(text)
    assert safejson.loads(text.encode()) == json.loads(text)


@given(st.binary(max_size=200) | st.text(max_size=200))
def test_any_input_decodes_or_is_a_value_error(data):
    with contextlib.suppress(ValueError):
        safejson.loads(data)


@pytest.mark.parametrize("data", [
    b"[" * 100000, "{" * 100000, '{"a":' * 65 + "1" + "}" * 65, "[" * 65 + "]" * 65,
    "NaN", "[Infinity]", '{"x": -Infinity}', "[1e999]", "-1e400", "9" * 5000, b"\xff\xfe", b'"\xc3"',
])
def test_refused(data):
    with pytest.raises(ValueError):
        safejson.loads(data)


def test_limits_are_inclusive():
    assert safejson.loads("[" * 64 + "]" * 64) is not None
    assert safejson.loads('{"a": 1.5e300}') == {"a": 1.5e300}
    assert not math.isinf(safejson.loads("1e308"))


@given(st.from_regex(r"[a-zA-Z0-9][a-zA-Z0-9_.\-]{0,40}", fullmatch=True), st.sampled_from(["\n", "\r\n", "\x00", "/"]))
def test_identifiers_match_the_whole_string(name, tail):
    assert naming.network_name_problem(name) is None and naming.container_id_problem(name) is None
    assert naming.network_name_problem(name + tail) is not None
    assert naming.container_id_problem(name + tail) is not None


def test_name_lengths_keep_every_cache_file_name_under_name_max():
    ifname = "i" * (naming.IFNAMSIZ - 1)
    longest = f".{'n' * naming.MAX_NETWORK_NAME}-{'c' * naming.MAX_CONTAINER_ID}-{ifname}.{'0' * 12}"
    assert len(longest.encode()) <= naming.NAME_MAX
    assert naming.network_name_problem("n" * naming.MAX_NETWORK_NAME) is None
    assert naming.network_name_problem("n" * (naming.MAX_NETWORK_NAME + 1)) is not None
    assert naming.container_id_problem("c" * (naming.MAX_CONTAINER_ID + 1)) is not None
