#!/usr/bin/env python3
"""The static shim's own cost, and what a C or a Go static binary costs to start.

- ``cost``: the installed static shim (metacni.shimbin) answering VERSION by itself, and making
  a full round trip to a real ``metacni daemon`` (``--no-api``) with a request the daemon rejects
  without kernel work (a CHECK of an unknown plugin type): exec + HTTP over the unix socket +
  the daemon's decode and answer. Target (issue #15): median <= 2 ms.
- ``exec``: fork+exec+wait of hello-world static binaries: C on glibc, C on musl (when
  ``musl-gcc`` is installed), Go (``CGO_ENABLED=0``); the figures of
  docs/design/1501-static-shim-in-c.md.

Every figure is the median (and p90) of N runs spawned with ``posix_spawn`` from this process
(so the spawner's own cost is the same for all), runs interleaved so that load hits all alike.
Needs nothing but gcc (and go for ``exec``); starts its daemon in a temp dir; touches nothing else.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "testkit"))  # metacni_testkit, if not installed

from metacni import shimbin  # noqa: E402
from metacni_testkit.daemon import DaemonProc, start_daemon  # noqa: E402

HELLO_C = 'int main(void) { static const char m[] = "hello\\n"; return write(1, m, 6) != 6; }\n'
HELLO_GO = 'package main\n\nimport "os"\n\nfunc main() { os.Stdout.Write([]byte("hello\\n")) }\n'


def summary(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {"n": len(values), "median_ms": round(statistics.median(values), 3),
            "p90_ms": round(ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))], 3)}


def spawn_ms(argv: list[str], env: dict[str, str], stdin: bytes) -> float:
    """Wall time of one fork+exec+wait, stdin from a pipe holding ``stdin``, output discarded."""
    r, w = os.pipe()
    os.write(w, stdin)  # configs here are far below the pipe buffer
    os.close(w)
    null = os.open(os.devnull, os.O_WRONLY)
    try:
        t0 = time.perf_counter()
        pid = os.posix_spawn(argv[0], argv, env, file_actions=[
            (os.POSIX_SPAWN_DUP2, r, 0), (os.POSIX_SPAWN_DUP2, null, 1), (os.POSIX_SPAWN_DUP2, null, 2)])
        os.waitpid(pid, 0)
        return (time.perf_counter() - t0) * 1000
    finally:
        os.close(r)
        os.close(null)


def interleaved(cases: dict[str, tuple[list[str], dict[str, str], bytes]], n: int) -> dict[str, Any]:
    times: dict[str, list[float]] = {name: [] for name in cases}
    for argv, env, stdin in cases.values():  # warm the page cache
        spawn_ms(argv, env, stdin)
    for _ in range(n):
        for name, (argv, env, stdin) in cases.items():
            times[name].append(spawn_ms(argv, env, stdin))
    return {name: summary(values) for name, values in times.items()}


def shim_roundtrip(daemon_socket: str, shim: Path, n: int) -> dict[str, Any]:
    """The fixed cost of daemon mode: the shim answering VERSION by itself (``shim_alone``) and a
    full round trip to the daemon with a CHECK it rejects without kernel work (``shim_to_daemon``)."""
    local = {"CNI_COMMAND": "VERSION", "METACNI_SOCKET": daemon_socket}
    remote = {"CNI_COMMAND": "CHECK", "CNI_CONTAINERID": "x", "CNI_NETNS": "/proc/self/ns/net",
              "CNI_IFNAME": "eth0", "METACNI_SOCKET": daemon_socket}
    remote_conf = json.dumps({"cniVersion": "1.0.0", "name": "x", "type": "roundtrip-probe"}).encode()
    probe = subprocess.run([str(shim)], input=remote_conf, env=remote, capture_output=True, timeout=60, check=False)
    answer = json.loads(probe.stdout)
    if probe.returncode != 1 or answer.get("code") in (None, 11):
        raise RuntimeError(f"the daemon did not reject the probe as expected: {probe}")
    return interleaved({"shim_alone": ([str(shim)], local, b'{"cniVersion":"1.0.0"}'),
                        "shim_to_daemon": ([str(shim)], remote, remote_conf)}, n)


def cost(n: int) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="mcshimcost-"))
    daemon: DaemonProc | None = None
    try:
        daemon = start_daemon(work / "daemon", args=["--no-api", "--no-routes", "--gc-period", "0",
                                                     "--no-regenerate-config", "--conf-dir", str(work / "conf"),
                                                     "--cache-dir", str(work / "cache")])
        return {"shim": str(shimbin.path()), "size_bytes": shimbin.path().stat().st_size,
                **shim_roundtrip(daemon.socket, shimbin.path(), n)}
    finally:
        if daemon is not None:
            daemon.stop()
        shutil.rmtree(work, ignore_errors=True)


def build_hellos(out: Path) -> dict[str, Path]:
    out.mkdir(parents=True, exist_ok=True)
    (out / "hello.c").write_text("#include <unistd.h>\n" + HELLO_C)
    built = {"c-glibc-static": out / "hello-glibc"}
    subprocess.run(["gcc", "-Os", "-static", "-s", "-o", str(built["c-glibc-static"]), str(out / "hello.c")],
                   check=True)
    if shutil.which("musl-gcc"):
        built["c-musl-static"] = out / "hello-musl"
        subprocess.run(["musl-gcc", "-Os", "-static", "-s", "-o", str(built["c-musl-static"]), str(out / "hello.c")],
                       check=True)
    if shutil.which("go"):
        gosrc = out / "gohello"
        gosrc.mkdir(exist_ok=True)
        (gosrc / "main.go").write_text(HELLO_GO)
        built["go-static"] = out / "hello-go"
        env = dict(os.environ, CGO_ENABLED="0", GO111MODULE="off", GOFLAGS="", GOCACHE=str(out / "gocache"))
        subprocess.run(["go", "build", "-ldflags=-s -w", "-o", str(built["go-static"]), "."], cwd=gosrc, env=env,
                       check=True)
    return built


def exec_costs(n: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="mchello-") as tmp:
        built = build_hellos(Path(tmp))
        timings = interleaved({name: ([str(p)], {}, b"") for name, p in built.items()}, n)
        return {name: {**timings[name], "size_bytes": p.stat().st_size} for name, p in built.items()}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("what", nargs="*", help="cost, exec (default: both)")
    ap.add_argument("-n", type=int, default=500, help="runs per case")
    args = ap.parse_args()
    what = args.what or ["cost", "exec"]
    if set(what) - {"cost", "exec"}:
        ap.error(f"unknown measurement {sorted(set(what) - {'cost', 'exec'})}: choose cost, exec")
    results: dict[str, Any] = {"machine": {"cpus": os.cpu_count(), "load": os.getloadavg()}}
    if "cost" in what:
        results["cost"] = cost(args.n)
    if "exec" in what:
        results["exec"] = exec_costs(args.n)
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
