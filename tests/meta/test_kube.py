"""ApiKubeView against the fake API: 404 is None, errors are code 11, credentials rotate, timeouts hold."""

from __future__ import annotations

import time

import pytest

from metacni.meta.kube import ApiKubeView, KubeSettings, KubeView, set_view_factory, view_for
from metacni.sim.fakeapi import FakeAPIServer
from metacni.spec.errors import CNIError, Code


@pytest.fixture
def view_cls():
    return ApiKubeView


@pytest.fixture
def api():
    with FakeAPIServer(require_auth=True) as server:
        yield server


def test_rotated_token_is_picked_up(view_cls, api, tmp_path):
    kc = api.write_kubeconfig(tmp_path / "kc")
    api.add_pod("default", "p")
    view = view_cls(KubeSettings(kubeconfig=kc, retries=0))
    assert view.get_pod("default", "p")["metadata"]["name"] == "p"
    api.token = "rotated-token"
    with pytest.raises(CNIError) as info:
        view.get_pod("default", "p")  # old token: 401, re-read finds the same file, still 401
    assert info.value.code == Code.TRY_AGAIN_LATER and "401" in info.value.details
    api.write_kubeconfig(kc)  # the installer writes the new token
    assert view.get_pod("default", "p")["metadata"]["name"] == "p"
    view.close()


def test_not_found_and_errors(view_cls, api, tmp_path):
    view = view_cls(KubeSettings(kubeconfig=api.write_kubeconfig(tmp_path / "kc"), retries=0))
    assert view.get_pod("default", "nope") is None
    assert view.get_nad("default", "nope") is None
    with api.fault(403, resource="pods"), pytest.raises(CNIError) as info:
        view.get_pod("default", "p")
    assert info.value.code == Code.TRY_AGAIN_LATER and "GET pod default/p" in info.value.details
    view.close()


def test_configurable_timeout(view_cls, api, tmp_path):
    api.add_pod("default", "p")
    settings = KubeSettings.from_conf({"kubeconfig": str(api.write_kubeconfig(tmp_path / "kc")),
                                       "apiTimeout": 0.3, "apiRetries": 0})
    view = view_cls(settings)
    assert view.get_pod("default", "p") is not None  # client imported and connected: time the request only
    with api.fault(delay=3.0, resource="pods"):
        started = time.monotonic()
        with pytest.raises(CNIError) as info:
            view.get_pod("default", "p")
        assert time.monotonic() - started < 2.5
    assert info.value.msg == "Kubernetes API unreachable"
    view.close()


def test_bad_settings_and_no_api(monkeypatch):
    with pytest.raises(CNIError):
        KubeSettings.from_conf({"apiTimeout": -1})
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    assert view_for({}) is None  # no kubeconfig, not in a cluster: no API at all


def test_view_factory_hook():
    sentinel = object()
    set_view_factory(lambda conf: sentinel)  # type: ignore[arg-type,return-value]
    try:
        assert view_for({"kubeconfig": "/nonexistent"}) is sentinel
    finally:
        set_view_factory(None)


def test_standalone_calls_use_the_api_view(api, tmp_path):
    """One client: without a daemon's factory, a call gets the ``kubernetes``-client view, and
    that is a KubeView at run time (an ABC, not a typing-only protocol)."""
    view = view_for({"kubeconfig": str(api.write_kubeconfig(tmp_path / "kc"))})
    assert isinstance(view, ApiKubeView) and isinstance(view, KubeView)
    with pytest.raises(TypeError):
        KubeView()  # type: ignore[abstract]
