"""Our conversions against the Go reference library's, on generated results."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from metacni.spec.errors import CNIError
from metacni.spec.results import Result, convert
from metacni_testkit import golibcni
from metacni_testkit.strategies import results

pytestmark = pytest.mark.skipif(not golibcni.available(), reason="needs golang-go and golang-github-appc-cni-dev")

# Debian's libcni is 1.1.x: it knows versions up to 1.0.0 and no 1.1 route/interface fields.
GO_VERSIONS = ["0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0"]


@pytest.fixture(scope="module")
def go_tool() -> Path:
    return golibcni.build()


def go_convert(tool: Path, result: Result, target: str) -> dict:
    proc = subprocess.run([str(tool), "convert", target], input=json.dumps(result.to_wire()),
                          capture_output=True, text=True, timeout=30)
    return json.loads(proc.stdout)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.sampled_from(GO_VERSIONS).flatmap(lambda v: results(v, with_11_fields=False).map(
    lambda r: convert(r, v) if r.ips or v not in ("0.1.0", "0.2.0") else convert(
        r.model_copy(update={"ips": []}), "1.0.0"))),
    st.sampled_from(GO_VERSIONS))
def test_conversion_matches_libcni(go_tool: Path, result: Result, target: str) -> None:
    go = go_convert(go_tool, result, target)
    try:
        ours = convert(result, target).to_wire()
    except CNIError as exc:
        assert "error" in go, f"Go converted what we refused ({exc}): {go}"
        return
    assert "error" not in go, f"we converted what Go refused: {go['error']}"
    assert ours == go
