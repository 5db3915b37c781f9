"""Both KubeViews reuse their API connection: an unread response left in urllib3's pool used to
cost every network-status patch a new TCP (and, on a real cluster, TLS) handshake."""

from __future__ import annotations

import pytest

from metacni.meta.kube import ApiKubeView, KubeSettings
from metacni.meta.kubehttp import HttpKubeView
from metacni.testing.fakeapi import FakeAPIServer


@pytest.mark.parametrize("view_cls", [ApiKubeView, HttpKubeView], ids=["kubernetes", "stdlib"])
def test_reads_and_patches_share_one_connection(view_cls, tmp_path):
    with FakeAPIServer() as api:
        api.add_pod("default", "p")
        view = view_cls(KubeSettings(kubeconfig=str(api.write_kubeconfig(tmp_path / "kc")), retries=0))
        try:
            for i in range(5):
                view.patch_pod_network_status("default", "p", [{"name": "net", "interface": f"eth{i}"}])
                assert view.get_pod("default", "p") is not None
            pod = view.get_pod("default", "p")
            assert "eth4" in pod["metadata"]["annotations"]["k8s.v1.cni.cncf.io/network-status"]
            assert api.count("patch", "pods") == 5
            assert api.connections_accepted() == 1
        finally:
            view.close()
