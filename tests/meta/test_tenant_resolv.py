"""host-local reads ``resolvConf`` safely even where the node's own config names it: only a
regular file, bounded in size (a FIFO would block the plugin, /dev/zero would fill memory)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from metacni_plugins.host_local.resolv import MAX_RESOLV_CONF, read_resolv_conf


def test_regular_file_is_read(tmp_path: Path):
    path = tmp_path / "resolv.conf"
    path.write_text("nameserver 10.0.0.53\n")
    assert read_resolv_conf(str(path)) == "nameserver 10.0.0.53\n"


def test_fifo_does_not_block(tmp_path: Path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(OSError, match="not a regular file"):
        read_resolv_conf(str(fifo))


def test_device_and_oversized_files_are_refused(tmp_path: Path):
    with pytest.raises(OSError, match="not a regular file"):
        read_resolv_conf("/dev/zero")
    big = tmp_path / "big"
    big.write_bytes(b"#" * (MAX_RESOLV_CONF + 1))
    with pytest.raises(OSError, match="larger than"):
        read_resolv_conf(str(big))
