"""Both KubeViews against the fake API: 404 is None, errors are code 11, credentials rotate, timeouts hold.

``ApiKubeView`` (the ``kubernetes`` client, the daemon's) and ``HttpKubeView`` (standard library, the
standalone call's) must behave the same: every test here runs on both."""

from __future__ import annotations

import time

import pytest

from metacni.meta.kube import ApiKubeView, KubeSettings, set_view_factory, view_for
from metacni.meta.kubehttp import HttpKubeView
from metacni.sim.fakeapi import FakeAPIServer
from metacni.spec.errors import CNIError, Code


@pytest.fixture(params=[ApiKubeView, HttpKubeView], ids=["kubernetes", "stdlib"])
def view_cls(request):
    return request.param


@pytest.fixture
def api():
    with FakeAPIServer(require_auth=True) as server:
        yield server


def test_rotated_token_is_picked_up(view_cls, api, tmp_path):
    kc = api.write_kubeconfig(tmp_path / "kc")
    api.add_pod("default", "p")
    view = view_cls(KubeSettings(kubeconfig=str(kc), retries=0))
    assert view.get_pod("default", "p")["metadata"]["name"] == "p"
    api.token = "rotated-token"
    with pytest.raises(CNIError) as info:
        view.get_pod("default", "p")  # old token: 401, re-read finds the same file, still 401
    assert info.value.code == Code.TRY_AGAIN_LATER and "401" in info.value.details
    api.write_kubeconfig(kc)  # the installer writes the new token
    assert view.get_pod("default", "p")["metadata"]["name"] == "p"
    view.close()


def test_not_found_and_errors(view_cls, api, tmp_path):
    view = view_cls(KubeSettings(kubeconfig=str(api.write_kubeconfig(tmp_path / "kc")), retries=0))
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


def test_standalone_calls_use_the_stdlib_view(api, tmp_path, monkeypatch):
    conf = {"kubeconfig": str(api.write_kubeconfig(tmp_path / "kc"))}
    monkeypatch.delenv("METACNI_KUBE_CLIENT", raising=False)
    assert isinstance(view_for(conf), HttpKubeView)
    monkeypatch.setenv("METACNI_KUBE_CLIENT", "kubernetes")
    assert isinstance(view_for(conf), ApiKubeView)
