"""Multus' ``logToStderr`` and ``logOptions`` (lumberjack rotation of ``logFile``), issue #18.

Multus (pkg/logging): logOptions are lumberjack's maxSize (MB), maxAge (days), maxBackups and
compress; logToStderr (default true) false keeps the log off stderr.
"""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from metacni.meta.logfile import LogOptions, backups, file_handler, log_to_stderr
from metacni.spec.errors import CNIError


def _record(logging, size: int) -> object:
    return logging.LogRecord("metacni.test", logging.ERROR, __file__, 1, "x" * size, None, None)


def test_log_file_rotates_at_max_size_compresses_and_keeps_max_backups(tmp_path: Path):
    import logging

    path = tmp_path / "metacni.log"
    handler = file_handler(path, LogOptions(max_size_mb=1, max_backups=2, compress=True, max_age_days=0))
    try:
        for _ in range(5):  # five rotations: ~1 MiB each
            for _ in range(11):
                handler.emit(_record(logging, 100 * 1024))
    finally:
        handler.close()
    rotated = backups(path)
    assert len(rotated) == 2 and all(p.name.endswith(".log.gz") for p in rotated)
    with gzip.open(rotated[-1], "rb") as f:
        assert 1000 * 1024 <= len(f.read()) <= 1024 * 1024  # rotated before exceeding
    assert path.stat().st_size < 1024 * 1024


def test_rotated_files_older_than_max_age_are_removed(tmp_path: Path):
    import logging

    path = tmp_path / "m.log"
    old = tmp_path / "m-2020-01-01T00-00-00.000.log.gz"
    old.write_bytes(b"old")
    os.utime(old, (time.time() - 3 * 86400, time.time() - 3 * 86400))
    handler = file_handler(path, LogOptions(max_size_mb=1, max_age_days=2, max_backups=0, compress=False))
    try:
        for _ in range(11):
            handler.emit(_record(logging, 100 * 1024))
    finally:
        handler.close()
    rotated = backups(path)
    assert not old.exists() and len(rotated) == 1 and rotated[0].suffix == ".log"


@pytest.mark.parametrize("conf, where", [
    ({"logOptions": []}, "logOptions"), ({"logOptions": {"maxSize": -1}}, "logOptions.maxSize"),
    ({"logOptions": {"maxAge": "5"}}, "logOptions.maxAge"),
    ({"logOptions": {"compress": "yes"}}, "logOptions.compress"),
])
def test_bad_log_options_name_the_key(conf: dict, where: str):
    with pytest.raises(CNIError) as info:
        LogOptions.from_conf(conf)
    assert info.value.code == 7 and info.value.details.startswith(where + ":")


def test_log_options_defaults_are_multus_defaults():
    assert LogOptions.from_conf({}) == LogOptions(max_size_mb=100, max_age_days=5, max_backups=5, compress=True)
    assert log_to_stderr({}) is True and log_to_stderr({"logToStderr": False}) is False


SCRIPT = textwrap.dedent("""
    import json, sys
    from metacni.engine import skel
    from metacni.meta.config import MetaConfig
    from metacni.meta.service import configure_logging
    import logging
    skel.configure_logging()
    configure_logging(MetaConfig.from_dict(json.loads(sys.argv[1])))
    logging.getLogger("metacni.meta.test").error("marker-%s", "line")
""")


@pytest.mark.parametrize("to_stderr", [True, False])
def test_log_to_stderr(tmp_path: Path, to_stderr: bool):
    log = tmp_path / "meta.log"
    conf = {"cniVersion": "1.0.0", "name": "m", "type": "metacni", "confDir": str(tmp_path),
            "logFile": str(log), "logLevel": "error", "logToStderr": to_stderr}
    proc = subprocess.run([sys.executable, "-c", SCRIPT, json.dumps(conf)], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "marker-line" in log.read_text()
    assert ("marker-line" in proc.stderr) is to_stderr
