"""The dynamic client's discovery cache (metacni.meta.kube_dynamic): where it lives, that it saves
the discovery requests of later clients, and that clients running at once never read half a file."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from metacni.meta.kube import ApiKubeView, KubeSettings
from metacni.meta.kube_dynamic import discovery_cache_file
from metacni.sim.fakeapi import FakeAPIServer


@pytest.fixture
def api() -> Iterator[FakeAPIServer]:
    with FakeAPIServer() as server:
        server.add_pod("ns1", "p")
        server.add_nad("ns1", "net-a", {"cniVersion": "1.0.0", "type": "bridge"})
        yield server


def read_all(settings: KubeSettings) -> None:
    view = ApiKubeView(settings)
    try:
        assert view.get_pod("ns1", "p") is not None
        assert view.get_nad("ns1", "net-a") is not None
    finally:
        view.close()


def test_discovery_dir_is_under_cni_dir(tmp_path):
    settings = KubeSettings.from_conf({"cniDir": str(tmp_path / "cni"), "kubeconfig": "/k"})
    assert settings.discovery_dir == str(tmp_path / "cni" / "kube-discovery")
    assert KubeSettings.from_conf({"kubeconfig": "/k"}).discovery_dir == ""  # no cniDir: kept in memory
    assert KubeSettings().discovery_dir == ""


def test_cache_file_saves_the_next_clients_discovery(api, tmp_path):
    cache = tmp_path / "cni" / "kube-discovery"
    settings = KubeSettings(kubeconfig=str(api.write_kubeconfig(tmp_path / "kc")), retries=0,
                            discovery_dir=str(cache))
    read_all(settings)
    # /version, /apis, /api/v1, /apis/k8s.cni.cncf.io/v1: nothing else of the cluster is fetched
    assert api.count("get", "discovery") == 4
    files = sorted(p.name for p in cache.iterdir())
    assert files == [Path(discovery_cache_file(str(cache), api.url)).name]  # no temp file left behind
    assert (cache / files[0]).stat().st_mode & 0o777 == 0o600
    assert "kubernetes" in json.loads((cache / files[0]).read_text())["version"]
    api.reset_counts()
    read_all(settings)  # a new client (a new standalone call): the file answers discovery
    assert api.count("get", "discovery") == 0
    assert api.count("get") == 2


def test_clients_discovering_at_once_never_read_a_partial_file(api, tmp_path, caplog):
    """Cold cache, eight clients in parallel: each writes the file whole (temp file + rename), so
    none logs the library's "load cache error" and rediscovers."""
    settings = KubeSettings(kubeconfig=str(api.write_kubeconfig(tmp_path / "kc")), retries=0,
                            discovery_dir=str(tmp_path / "discovery"))
    errors: list[BaseException] = []
    start = threading.Barrier(8)

    def run() -> None:
        try:
            start.wait(10)
            for _ in range(3):
                read_all(settings)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    caplog.set_level(logging.ERROR)
    threads = [threading.Thread(target=run) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not any(t.is_alive() for t in threads)
    assert errors == []
    assert [r.getMessage() for r in caplog.records if "cache" in r.getMessage()] == []
    # a thread's later clients find the file (whole, or a part another thread wrote: they fetch the rest)
    assert api.count("get", "discovery") < 3 * 8 * 4
    api.reset_counts()
    read_all(settings)
    assert api.count("get", "discovery") == 0


def test_unwritable_cache_dir_still_works(api, tmp_path, caplog):
    blocker = tmp_path / "file"
    blocker.write_text("")
    settings = KubeSettings(kubeconfig=str(api.write_kubeconfig(tmp_path / "kc")), retries=0,
                            discovery_dir=str(blocker / "kube-discovery"))  # a file where a dir should be
    with caplog.at_level(logging.WARNING):
        read_all(settings)
    assert any("cannot write the API discovery cache" in r.getMessage() for r in caplog.records)
