"""ApiKubeView (the ``kubernetes`` client's public API) against the fake API.

The requests and patch type the meta plugin makes, retries, TLS with a CA, client certificates and
tls-server-name through a TLS terminator in front of the fake API, bearer tokens, token files,
the in-cluster service account over HTTPS, and exec credentials.
"""

from __future__ import annotations

import base64
import contextlib
import json
import socket
import ssl
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from metacni.meta.kube import NETWORK_STATUS, ApiKubeView, KubeSettings
from metacni.sim.fakeapi import DEFAULT_TOKEN, FakeAPIServer
from metacni.spec.errors import CNIError, Code

VIEWS = pytest.mark.parametrize("view_cls", [ApiKubeView])


@pytest.fixture
def api() -> Iterator[FakeAPIServer]:
    with FakeAPIServer(require_auth=True) as server:
        yield server


def json_kubeconfig(path: Path, server: str, user: dict[str, Any], **cluster: Any) -> Path:
    path.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "c",
        "clusters": [{"name": "k", "cluster": {"server": server, **cluster}}],
        "users": [{"name": "u", "user": user}],
        "contexts": [{"name": "c", "context": {"cluster": "k", "user": "u"}}]}))
    return path


def recorded_patch_types(api: FakeAPIServer, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The patch content types the fake API's store receives (the fake, not the client, is wrapped)."""
    seen: list[str] = []
    original = api.store.patch

    def patch(rt: Any, namespace: Any, name: Any, kind: str, *args: Any, **kwargs: Any) -> Any:
        seen.append(kind)
        return original(rt, namespace, name, kind, *args, **kwargs)

    monkeypatch.setattr(api.store, "patch", patch)
    return seen


# ---------------------------------------------------------------------- requests
def test_a_status_patch_with_a_uid_applies_only_to_that_pod(api, tmp_path):
    """The UID is a precondition: a pod re-created under the same name refuses the write."""
    api.add_pod("ns1", "p", uid="1111")
    view = ApiKubeView(KubeSettings(kubeconfig=api.write_kubeconfig(tmp_path / "kc"), retries=0))
    try:
        with pytest.raises(CNIError) as info:
            view.patch_pod_network_status("ns1", "p", [{"name": "old pod"}], uid="2222")
        assert info.value.code == Code.TRY_AGAIN_LATER and "HTTP 422" in info.value.details
        assert NETWORK_STATUS not in (api.get_pod("ns1", "p")["metadata"].get("annotations") or {})
        assert view.patch_pod_network_status("ns1", "p", [{"name": "this pod"}], uid="1111")
    finally:
        view.close()
    assert json.loads(api.get_pod("ns1", "p")["metadata"]["annotations"][NETWORK_STATUS]) == [{"name": "this pod"}]


@VIEWS
def test_get_and_patch_are_the_requests_the_client_makes(view_cls, api, tmp_path, monkeypatch):
    kinds = recorded_patch_types(api, monkeypatch)
    api.add_pod("ns1", "p", annotations={"keep": "me"})
    api.add_nad("ns1", "net-a", {"cniVersion": "1.0.0", "type": "bridge"})
    view = view_cls(KubeSettings(kubeconfig=api.write_kubeconfig(tmp_path / "kc"), retries=0))
    try:
        assert view.get_pod("ns1", "p")["metadata"]["annotations"] == {"keep": "me"}
        assert json.loads(view.get_nad("ns1", "net-a")["spec"]["config"])["type"] == "bridge"
        status = [{"name": "primary", "interface": "eth0", "ips": ["10.0.0.2"], "default": True}]
        assert view.patch_pod_network_status("ns1", "p", status) is True
        assert view.patch_pod_network_status("ns1", "gone", status) is False  # no pod: not an error
    finally:
        view.close()
    annotations = api.get_pod("ns1", "p")["metadata"]["annotations"]
    assert annotations["keep"] == "me" and json.loads(annotations[NETWORK_STATUS]) == status
    assert kinds == ["application/strategic-merge-patch+json"] * 2
    # discovery (no cache directory: in memory): /version, /apis, /api/v1, /apis/k8s.cni.cncf.io/v1
    assert api.counts == {("get", "pods"): 1, ("get", "network-attachment-definitions"): 1, ("patch", "pods/status"): 2,
                          ("get", "discovery"): 4}


def outcome(fn: Any) -> str:
    try:
        fn()
    except CNIError as exc:
        assert exc.code == Code.TRY_AGAIN_LATER
        return f"error: {exc.msg}"
    return "ok"


@pytest.mark.parametrize(("fault", "retries", "expected"), [
    (dict(status=503, retry_after=0, times=1), 1, ("ok", "error: Kubernetes API error")),  # GET retried, PATCH not
    (dict(status=503, retry_after=0, times=1), 0, ("error: Kubernetes API error",) * 2),  # no budget
    (dict(status=409, times=1), 1, ("error: Kubernetes API error",) * 2),  # a conflict is never retried
    (dict(drop=True, times=1), 0, ("error: Kubernetes API unreachable",) * 2),
])
def test_retries(api, tmp_path, fault, retries, expected):
    """``apiRetries`` is urllib3's budget under the client: idempotent reads are retried, the PATCH is not."""
    api.add_pod("default", "p")
    view = ApiKubeView(KubeSettings(kubeconfig=api.write_kubeconfig(tmp_path / "kc"), retries=retries))
    try:
        view.get_pod("default", "p")  # a warm pooled connection, as in a real call
        with api.fault(verb="get", resource="pods", **fault):
            got = outcome(lambda: view.get_pod("default", "p"))
        with api.fault(verb="patch", resource="pods/status", **fault):
            patched = outcome(lambda: view.patch_pod_network_status("default", "p", []))
    finally:
        view.close()
    assert (got, patched) == expected


@VIEWS
def test_unreachable_api_is_code_11(view_cls, tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens once closed
    kc = json_kubeconfig(tmp_path / "kc", f"http://127.0.0.1:{port}", {"token": "t"})
    view = view_cls(KubeSettings(kubeconfig=kc, retries=1))
    with pytest.raises(CNIError) as info:
        view.get_pod("default", "p")
    view.close()
    assert info.value.code == Code.TRY_AGAIN_LATER and info.value.msg == "Kubernetes API unreachable"
    assert "GET pod default/p" in info.value.details


def test_bad_kubeconfig_is_code_11(tmp_path):
    (tmp_path / "kc").write_text('{"apiVersion": "v1", "clusters": []}')
    with pytest.raises(CNIError) as info:
        ApiKubeView(KubeSettings(kubeconfig=tmp_path / "kc")).get_pod("default", "p")
    assert info.value.code == Code.TRY_AGAIN_LATER and info.value.msg == "cannot load Kubernetes credentials"
    assert str(tmp_path / "kc") in info.value.details


def test_token_file_is_reread_after_401(api, tmp_path):
    api.add_pod("default", "p")
    token = tmp_path / "token"
    token.write_text(DEFAULT_TOKEN + "\n")
    kc = json_kubeconfig(tmp_path / "kc", api.url, {"tokenFile": "token"})  # relative to the kubeconfig
    view = ApiKubeView(KubeSettings(kubeconfig=kc, retries=0))
    assert view.get_pod("default", "p") is not None
    api.token = "rotated"
    token.write_text("rotated")
    assert view.get_pod("default", "p") is not None  # 401, credentials re-read, retried
    api.token = "rotated-again"
    token.unlink()
    with pytest.raises(CNIError) as info:
        view.get_pod("default", "p")
    assert info.value.msg == "cannot load Kubernetes credentials" and "kc" in info.value.details
    view.close()


# ---------------------------------------------------------------------- TLS
def openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A CA, a server certificate for 127.0.0.1 and fakeapi.test, and a client certificate."""
    d = tmp_path_factory.mktemp("pki")
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    openssl("req", "-x509", *ec, "-subj", "/CN=metacni-test-ca", "-days", "2", "-keyout", "ca.key",
            "-out", "ca.crt", cwd=d)
    (d / "server.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:fakeapi.test\n")
    (d / "client.ext").write_text("extendedKeyUsage=clientAuth\n")
    for name in ("server", "client"):
        openssl("req", "-new", *ec, "-subj", f"/CN={name}", "-keyout", f"{name}.key", "-out", f"{name}.csr", cwd=d)
        openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
                "-days", "2", "-extfile", f"{name}.ext", "-out", f"{name}.crt", cwd=d)
    return d


class TlsFront:
    """TLS termination in front of the plain-HTTP fake API; ``require_client_cert`` checks client certs."""

    def __init__(self, pki: Path, backend: tuple[str, int], require_client_cert: bool) -> None:
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(pki / "server.crt", pki / "server.key")
        if require_client_cert:
            self.ctx.verify_mode = ssl.CERT_REQUIRED
            self.ctx.load_verify_locations(pki / "ca.crt")
        self.backend = backend
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.handshakes_failed = 0
        self._threads: list[threading.Thread] = []
        self._socks: list[socket.socket] = []
        self._accepting = threading.Thread(target=self._accept, daemon=True)
        self._accepting.start()

    def _accept(self) -> None:
        while True:
            try:
                raw, _ = self.listener.accept()
            except OSError:
                return
            try:
                conn = self.ctx.wrap_socket(raw, server_side=True)
            except (ssl.SSLError, OSError):
                self.handshakes_failed += 1
                raw.close()
                continue
            back = socket.create_connection(self.backend)
            self._socks += [conn, back]
            for src, dst in ((conn, back), (back, conn)):
                t = threading.Thread(target=self._pump, args=(src, dst), daemon=True)
                t.start()
                self._threads.append(t)

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        """Shut every socket down (which wakes the threads blocked on them), wait for the threads,
        and only then close the sockets. Closed first, as before, a socket's descriptor number
        went back to the process while a pump thread was still inside OpenSSL with it; the next
        test's socket got that number, and the stale TLS connection wrote an alert into it (a
        plain client of another test once read ``17 03 03 00 13 ...`` before its answer)."""
        with contextlib.suppress(OSError):
            self.listener.shutdown(socket.SHUT_RDWR)  # accept() returns (EINVAL)
        self._accepting.join(5)
        for s in list(self._socks):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
        for t in self._threads:
            t.join(5)
        assert not self._accepting.is_alive() and not any(t.is_alive() for t in self._threads), \
            "TLS front threads still running: their sockets stay open"
        self.listener.close()
        for s in self._socks:
            s.close()


@pytest.fixture
def tls_front(api: FakeAPIServer, pki: Path, request: pytest.FixtureRequest) -> Iterator[TlsFront]:
    front = TlsFront(pki, (api.host, api.port), require_client_cert=getattr(request, "param", False))
    yield front
    front.close()


def b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode()


@pytest.mark.parametrize("tls_front", [True], indirect=True)
@VIEWS
def test_tls_with_inline_ca_and_client_certificate(view_cls, api, tls_front, pki, tmp_path):
    api.add_pod("default", "p")
    kc = json_kubeconfig(tmp_path / "kc", f"https://127.0.0.1:{tls_front.port}",
                         {"token": DEFAULT_TOKEN, "client-certificate-data": b64(pki / "client.crt"),
                          "client-key-data": b64(pki / "client.key")},
                         **{"certificate-authority-data": b64(pki / "ca.crt")})
    view = view_cls(KubeSettings(kubeconfig=kc, retries=0))
    assert view.get_pod("default", "p")["metadata"]["name"] == "p"
    view.patch_pod_network_status("default", "p", [{"name": "x"}])
    view.close()
    assert NETWORK_STATUS in api.get_pod("default", "p")["metadata"]["annotations"]


@pytest.mark.parametrize("tls_front", [True], indirect=True)
def test_tls_with_certificate_files_and_server_name(api, tls_front, pki, tmp_path):
    api.add_pod("default", "p")
    kc = json_kubeconfig(pki / f"kc-{tls_front.port}", f"https://127.0.0.1:{tls_front.port}",
                         {"token": DEFAULT_TOKEN, "client-certificate": "client.crt", "client-key": "client.key"},
                         **{"certificate-authority": "ca.crt", "tls-server-name": "fakeapi.test"})
    view = ApiKubeView(KubeSettings(kubeconfig=kc, retries=0))
    assert view.get_pod("default", "p") is not None
    view.close()
    # Without a client certificate the front refuses the handshake: an unreachable API, code 11.
    kc.write_text(kc.read_text().replace('"client-certificate"', '"unused-a"').replace('"client-key"', '"unused-b"'))
    view = ApiKubeView(KubeSettings(kubeconfig=kc, retries=0))
    with pytest.raises(CNIError) as info:
        view.get_pod("default", "p")
    view.close()
    assert info.value.msg == "Kubernetes API unreachable"


def test_tls_verification_failures_and_insecure_skip(api, tls_front, pki, tmp_path):
    api.add_pod("default", "p")
    server = f"https://127.0.0.1:{tls_front.port}"
    for cluster in ({}, {"certificate-authority-data": b64(pki / "ca.crt"), "tls-server-name": "other.test"}):
        kc = json_kubeconfig(tmp_path / "kc", server, {"token": DEFAULT_TOKEN}, **cluster)
        with pytest.raises(CNIError) as info:  # unknown CA, then a name the certificate does not carry
            ApiKubeView(KubeSettings(kubeconfig=kc, retries=2)).get_pod("default", "p")
        assert info.value.code == Code.TRY_AGAIN_LATER and "SSLCertVerificationError" in info.value.details
    kc = json_kubeconfig(tmp_path / "kc", server, {"token": DEFAULT_TOKEN}, **{"insecure-skip-tls-verify": True})
    assert ApiKubeView(KubeSettings(kubeconfig=kc)).get_pod("default", "p") is not None


def test_in_cluster_service_account(api, tls_front, pki, tmp_path, monkeypatch):
    api.add_pod("default", "p")
    sa = tmp_path / "sa"
    sa.mkdir()
    (sa / "ca.crt").write_bytes((pki / "ca.crt").read_bytes())
    (sa / "token").write_text(DEFAULT_TOKEN)
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "127.0.0.1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", str(tls_front.port))
    settings = KubeSettings()
    assert settings.in_cluster
    view = ApiKubeView(settings, sa_dir=sa)
    assert view.get_pod("default", "p") is not None
    api.token = "rotated"
    (sa / "token").write_text("rotated")  # kubelet rotates the projected token
    assert view.get_pod("default", "p") is not None
    view.close()


# ---------------------------------------------------------------------- exec credentials
def test_exec_credentials(api, tmp_path):
    api.add_pod("default", "p")
    plugin = tmp_path / "cred"
    plugin.write_text("#!/bin/sh\necho '" + json.dumps({
        "apiVersion": "client.authentication.k8s.io/v1beta1", "kind": "ExecCredential",
        "status": {"token": DEFAULT_TOKEN}}) + "'\n")
    plugin.chmod(0o755)
    kc = json_kubeconfig(tmp_path / "kc", api.url, {"exec": {
        "apiVersion": "client.authentication.k8s.io/v1beta1", "command": str(plugin)}})
    view = ApiKubeView(KubeSettings(kubeconfig=kc, retries=0))
    assert view.get_pod("default", "p")["metadata"]["name"] == "p"
    view.close()
