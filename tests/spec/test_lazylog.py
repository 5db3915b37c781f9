"""``metacni.spec.lazylog``: a standalone call that logs nothing never imports ``logging``; one that
logs gets the configured handler, format and levels, with the caller as the record's origin."""

from __future__ import annotations

import json
import subprocess
import sys

CODE = """
import io, json, sys
from metacni.engine import skel
from metacni.spec import lazylog
log = lazylog.getLogger("metacni.test")
out = io.StringIO()
skel.configure_logging(out)
log.debug("debug %s", 1)
log.info("info")
quiet = "logging" not in sys.modules and not log.isEnabledFor(lazylog.INFO)
def caller():
    log.warning("warned %s", 2, extra={"k": "v"})
caller()
try:
    raise ValueError("boom")
except ValueError:
    log.exception("failed")
import logging
record = []
class Keep(logging.Handler):
    def emit(self, r):
        record.append([r.funcName, r.filename, getattr(r, "k", None)])
logging.getLogger().addHandler(Keep())
caller()
log.debug("after import, below the level")
print(json.dumps({"quiet": quiet, "text": out.getvalue(), "origin": record}))
"""


def run(env: dict[str, str]) -> dict:
    proc = subprocess.run([sys.executable, "-S", "-c", CODE], capture_output=True, text=True, timeout=60,
                          env={"PYTHONPATH": ":".join(p for p in sys.path if p), **env})
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_nothing_logged_nothing_imported_then_configured_output():
    out = run({})
    assert out["quiet"] is True
    lines = out["text"].splitlines()
    assert lines[0].endswith(" WARNING metacni.test: warned 2")
    assert lines[1].endswith(" ERROR metacni.test: failed") and lines[2] == "Traceback (most recent call last):"
    assert "ValueError: boom" in out["text"] and "debug" not in out["text"] and "below" not in out["text"]
    assert out["origin"] == [["caller", "<string>", "v"]]


def test_a_lower_level_is_honoured_without_importing_first():
    out = run({"METACNI_LOG_LEVEL": "debug"})
    assert out["quiet"] is False
    assert " DEBUG metacni.test: debug 1" in out["text"] and " INFO metacni.test: info" in out["text"]
    assert " DEBUG metacni.test: after import, below the level" in out["text"]
