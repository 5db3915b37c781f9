"""Build the libcni-based reference tool (``main.go`` beside this file) from Debian's Go sources.

Debian's golang-github-appc-cni-dev ships libcni's source (v1.1.x) under /usr/share/gocode;
with golang-go the tool builds offline. Tests use it as "a libcni-based runtime" and as an
oracle for result conversion.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
from pathlib import Path

GOCODE = Path("/usr/share/gocode/src/github.com/containernetworking/cni/libcni")
SOURCE = Path(__file__).resolve().parent
OUT_DIR = Path(os.environ.get("METACNI_TEST_BUILD_DIR", "/tmp/metacni-test-build"))


def available() -> bool:
    return shutil.which("go") is not None and GOCODE.is_dir() and SOURCE.is_dir()


def build() -> Path:
    """Build once per machine (a lock keeps parallel xdist workers from racing)."""
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    binary = OUT_DIR / "golibcni"
    src = SOURCE / "main.go"
    with open(OUT_DIR / "golibcni.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if binary.exists() and binary.stat().st_mtime >= src.stat().st_mtime:
            return binary
        env = dict(os.environ, GOPATH="/usr/share/gocode", GO111MODULE="off", GOFLAGS="",
                   GOCACHE=str(OUT_DIR / "gocache"))
        tmp = OUT_DIR / "golibcni.tmp"
        subprocess.run(["go", "build", "-o", str(tmp), "."], cwd=SOURCE, env=env, check=True,
                       capture_output=True, timeout=300)
        tmp.replace(binary)
    return binary
