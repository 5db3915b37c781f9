"""The node kubeconfig: the standalone fallback's credentials, written from the service account.

A fake service-account dir (token, ca.crt) and KUBERNETES_SERVICE_HOST/PORT point at a TLS
terminator in front of the fake API (the one tests/meta/test_kube_client.py uses), so the written
file is used exactly as on a node: https with the inline CA and the inline bearer token.
"""

from __future__ import annotations

import base64
import json
import os
import stat
import subprocess
import sys
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import pytest

from metacni.daemon.confwatch import ConfWatcher, KubeconfigRefresher
from metacni.meta.install import (
    NoServiceAccount,
    kubeconfig_path,
    service_account_kubeconfig,
    write_kubeconfig,
)
from metacni.meta.kube import NETWORK_STATUS, ApiKubeView, KubeSettings
from metacni.sim.fakeapi import FakeAPIServer
from metacni_testkit.daemon import daemon_proc
from metacni_testkit.netns import is_root, sandbox
from tests.meta.test_kube_client import TlsFront, pki  # noqa: F401 - pki is a fixture

PRIMARY = {"cniVersion": "1.0.0", "name": "pri", "plugins": [{"type": "bridge"}]}


@pytest.fixture
def api() -> Iterator[FakeAPIServer]:
    with FakeAPIServer(require_auth=True) as server:
        yield server


@pytest.fixture
def front(api: FakeAPIServer, pki: Path) -> Iterator[TlsFront]:  # noqa: F811 - the imported fixture
    tls = TlsFront(pki, (api.host, api.port), require_client_cert=False)
    yield tls
    tls.close()


@pytest.fixture
def sa(tmp_path: Path, pki: Path, api: FakeAPIServer) -> Path:  # noqa: F811
    d = tmp_path / "serviceaccount"
    d.mkdir()
    (d / "ca.crt").write_bytes((pki / "ca.crt").read_bytes())
    (d / "token").write_text(api.token + "\n")
    return d


def env(front: TlsFront) -> dict[str, str]:
    return {"KUBERNETES_SERVICE_HOST": "127.0.0.1", "KUBERNETES_SERVICE_PORT": str(front.port)}


def rotate(sa: Path, token: str) -> None:
    """As kubelet does for a projected volume: a new file swapped in by rename (a new inode)."""
    (sa / "token.new").write_text(token)
    os.replace(sa / "token.new", sa / "token")


def bearer(path: Path) -> str:
    """The Authorization header the written kubeconfig's inline token makes."""
    return f"Bearer {json.loads(path.read_text())['users'][0]['user']['token']}"


def use(view_cls: type, path: Path, api: FakeAPIServer) -> None:
    """One GET and one PATCH with the written credentials, as a standalone ADD makes them."""
    view = view_cls(KubeSettings(kubeconfig=path, retries=0))
    try:
        assert view.get_pod("default", "p")["metadata"]["name"] == "p"
        view.patch_pod_network_status("default", "p", [{"name": view_cls.__name__}])
    finally:
        view.close()
    status = json.loads(api.get_pod("default", "p")["metadata"]["annotations"][NETWORK_STATUS])
    assert status == [{"name": view_cls.__name__}]


def test_the_client_uses_the_written_kubeconfig(api, front, sa, pki, tmp_path):  # noqa: F811
    api.add_pod("default", "p")
    conf_dir = tmp_path / "net.d"
    conf_dir.mkdir()
    assert write_kubeconfig(conf_dir, sa_dir=sa, environ=env(front)) is True
    path = conf_dir / "metacni.d" / "metacni.kubeconfig"
    assert kubeconfig_path(conf_dir) == path
    doc = json.loads(path.read_text())  # JSON: the standalone call needs no yaml
    cluster = doc["clusters"][0]["cluster"]
    assert cluster["server"] == f"https://127.0.0.1:{front.port}"
    assert base64.b64decode(cluster["certificate-authority-data"]) == (pki / "ca.crt").read_bytes()
    assert doc["users"][0]["user"] == {"token": api.token}  # stripped of the file's newline
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    use(ApiKubeView, path, api)
    assert front.handshakes_failed == 0


def test_rewritten_only_when_token_or_ca_changes(api, front, sa, pki, tmp_path):  # noqa: F811
    api.add_pod("default", "p")
    path = tmp_path / "kc" / "node.kubeconfig"
    assert write_kubeconfig(path, sa_dir=sa, environ=env(front)) is True
    before = path.stat()
    assert write_kubeconfig(path, sa_dir=sa, environ=env(front)) is False
    after = path.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)

    api.token = "rotated-token"
    with pytest.raises(Exception):  # noqa: B017 - the old token is refused (CNIError code 11)
        use(ApiKubeView, path, api)
    rotate(sa, "rotated-token")
    assert write_kubeconfig(path, sa_dir=sa, environ=env(front)) is True
    assert bearer(path) == "Bearer rotated-token"
    use(ApiKubeView, path, api)

    (sa / "ca.crt").write_bytes((pki / "ca.crt").read_bytes() + b"\n")  # a CA bundle change
    assert write_kubeconfig(path, sa_dir=sa, environ=env(front)) is True

    path.chmod(0o644)  # same content, wrong mode: fixed
    assert write_kubeconfig(path, sa_dir=sa, environ=env(front)) is True
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert sorted(p.name for p in path.parent.iterdir()) == ["node.kubeconfig"]  # no temp files left


def test_missing_service_account_keeps_the_existing_file(sa, tmp_path):
    path = tmp_path / "kc"
    environ = {"KUBERNETES_SERVICE_HOST": "10.96.0.1", "KUBERNETES_SERVICE_PORT": "443"}
    write_kubeconfig(path, sa_dir=sa, environ=environ)
    before = path.read_bytes()
    with pytest.raises(NoServiceAccount):
        write_kubeconfig(path, sa_dir=sa, environ={})
    (sa / "token").write_text("  \n")
    with pytest.raises(NoServiceAccount, match="empty"):
        write_kubeconfig(path, sa_dir=sa, environ=environ)
    (sa / "token").unlink()
    with pytest.raises(NoServiceAccount, match="token"):
        write_kubeconfig(path, sa_dir=sa, environ=environ)
    assert path.read_bytes() == before


@pytest.mark.parametrize(("host", "server"), [
    ("fd00:10:96::1", "https://[fd00:10:96::1]:443"),
    ("[fd00::1]", "https://[fd00::1]:443"),
    ("10.96.0.1", "https://10.96.0.1:443"),
])
def test_server_url_brackets_ipv6(sa, host, server):
    doc = service_account_kubeconfig(sa_dir=sa, environ={"KUBERNETES_SERVICE_HOST": host,
                                                         "KUBERNETES_SERVICE_PORT": "443"})
    assert doc["clusters"][0]["cluster"]["server"] == server
    assert urllib.parse.urlsplit(server).hostname == host.strip("[]")
    assert urllib.parse.urlsplit(server).port == 443


def test_refresher_on_the_conf_dir_watch(api, front, sa, tmp_path, monkeypatch):
    """The daemon's conf-dir pass: writes once, rewrites on rotation, and its own write into
    <conf_dir>/metacni.d does not count as a conf-dir change (no regeneration loop)."""
    for key, value in env(front).items():
        monkeypatch.setenv(key, value)
    conf_dir = tmp_path / "net.d"
    conf_dir.mkdir()
    regenerated: list[int] = []
    refresher = KubeconfigRefresher(conf_dir, sa)
    watcher = ConfWatcher(conf_dir, regenerate=lambda: regenerated.append(1), kubeconfig=refresher)
    last = watcher.check(None)
    path = refresher.path
    assert refresher.rewrites == 1 and path.is_file() and regenerated == [1]
    inode = path.stat().st_ino
    for _ in range(3):
        last = watcher.check(last)
    assert refresher.rewrites == 1 and regenerated == [1] and path.stat().st_ino == inode
    refresher.full_period = 0  # the periodic full check reads the files: still nothing to write
    assert refresher.check() is False and path.stat().st_ino == inode
    rotate(sa, "second")
    last = watcher.check(last)
    assert refresher.rewrites == 2 and bearer(path) == "Bearer second"
    assert regenerated == [1]
    path.unlink()  # removed by someone: written again
    watcher.check(last)
    assert refresher.rewrites == 3 and path.is_file()


def test_cli_write_kubeconfig(api, front, sa, tmp_path):
    conf_dir = tmp_path / "net.d"
    conf_dir.mkdir()
    (conf_dir / "10-pri.conflist").write_text(json.dumps(PRIMARY))
    target = conf_dir / "metacni.d" / "metacni.kubeconfig"
    cmd = [sys.executable, "-m", "metacni", "install", "--no-binary", "--conf-dir", str(conf_dir),
           "--host-conf-dir", "/etc/cni/net.d", "--kubeconfig", "/etc/cni/net.d/metacni.d/metacni.kubeconfig",
           "--write-kubeconfig", str(target), "--service-account-dir", str(sa)]
    environ = dict(os.environ, CNI_COMMAND="", **env(front))
    proc = subprocess.run(cmd, capture_output=True, text=True, env=environ)
    assert proc.returncode == 0, proc.stderr
    assert f"wrote {target}" in proc.stdout
    conf = json.loads((conf_dir / "00-metacni.conf").read_text())
    assert conf["kubeconfig"] == "/etc/cni/net.d/metacni.d/metacni.kubeconfig"  # the host's path
    api.add_pod("default", "p")
    use(ApiKubeView, target, api)
    again = subprocess.run(cmd, capture_output=True, text=True, env=environ)
    assert again.returncode == 0 and f"unchanged {target}" in again.stdout

    (conf_dir / "00-metacni.conf").unlink()
    environ.pop("KUBERNETES_SERVICE_HOST")
    failed = subprocess.run(cmd, capture_output=True, text=True, env=environ)
    assert failed.returncode == 1 and "KUBERNETES_SERVICE_HOST" in failed.stderr
    assert not (conf_dir / "00-metacni.conf").exists()  # the config is not written without its credentials


def wait_for(what: str, predicate, log_text, timeout: float = 30.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}:\n{log_text()}"
        time.sleep(0.05)  # polling the condition


@pytest.mark.skipif(not is_root(), reason="needs root for a network namespace")
def test_daemon_keeps_the_node_kubeconfig_fresh(api, front, sa, tmp_path):
    api.add_pod("default", "p")
    conf_dir = tmp_path / "net.d"
    conf_dir.mkdir()
    (conf_dir / "10-pri.conflist").write_text(json.dumps(PRIMARY))
    settings = tmp_path / "daemon.json"
    settings.write_text(json.dumps({"serviceAccountDir": str(sa)}))
    target = conf_dir / "metacni.d" / "metacni.kubeconfig"
    environ = dict(os.environ, **env(front))
    with sandbox() as box, daemon_proc(tmp_path / "daemon", netns=box.netns(), env=environ, args=[
            "--no-api", "--config", str(settings), "--conf-dir", str(conf_dir), "--cache-dir", str(tmp_path / "cache"),
            "--node-kubeconfig", str(target)]) as daemon:

        def token() -> str:
            try:
                return bearer(target)
            except (OSError, ValueError, KeyError, IndexError):
                return ""

        wait_for("the first write", lambda: token() == f"Bearer {api.token}", daemon.log_text)
        assert stat.S_IMODE(target.stat().st_mode) == 0o600
        use(ApiKubeView, target, api)
        api.token = "rotated-by-kubelet"
        rotate(sa, "rotated-by-kubelet")
        wait_for("the rewrite", lambda: token() == "Bearer rotated-by-kubelet", daemon.log_text)
        use(ApiKubeView, target, api)
        wait_for("the log line", lambda: sum("node kubeconfig written" in r.get("msg", "")
                                            for r in daemon.log_records()) == 2, daemon.log_text)
        assert (conf_dir / "00-metacni.conf").is_file()  # the conf-dir watch still does its job
        assert daemon.stop() == 0
