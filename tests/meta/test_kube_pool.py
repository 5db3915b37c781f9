"""ApiKubeView reuses its API connections: an unread response left in urllib3's pool used to
cost every network-status patch a new TCP (and, on a real cluster, TLS) handshake."""

from __future__ import annotations

import threading
import time

from metacni.meta.kube import ApiKubeView, KubeSettings
from metacni.sim.fakeapi import FakeAPIServer


def test_reads_and_patches_share_one_connection(tmp_path):
    with FakeAPIServer() as api:
        api.add_pod("default", "p")
        view = ApiKubeView(KubeSettings(kubeconfig=api.write_kubeconfig(tmp_path / "kc"), retries=0))
        try:
            for i in range(5):
                view.patch_pod_network_status("default", "p", [{"name": "net", "interface": f"eth{i}"}])
                assert view.get_pod("default", "p") is not None
            pod = view.get_pod("default", "p")
            assert "eth4" in pod["metadata"]["annotations"]["k8s.v1.cni.cncf.io/network-status"]
            assert api.count("patch", "pods/status") == 5
            assert api.connections_accepted() == 1
        finally:
            view.close()


def test_view_runs_concurrent_requests_on_separate_connections(tmp_path):
    """The daemon's ADDs run in parallel and each patches its pod's status through one shared
    view: requests must not queue behind each other's round trip, and their connections are
    kept for the next ones."""
    threads_n = 4
    gate = threading.Event()
    with FakeAPIServer() as api:
        for i in range(threads_n):
            api.add_pod("default", f"p{i}")
        view = ApiKubeView(KubeSettings(kubeconfig=api.write_kubeconfig(tmp_path / "kc"), retries=0))
        errors: list[BaseException] = []

        def patch(i: int) -> None:
            try:
                view.patch_pod_network_status("default", f"p{i}", [{"name": "net", "interface": "eth0"}])
            except BaseException as exc:  # reported by the main thread
                errors.append(exc)

        try:
            with api.fault(verb="patch", resource="pods/status", gate=gate) as held:
                workers = [threading.Thread(target=patch, args=(i,)) for i in range(threads_n)]
                for w in workers:
                    w.start()
                deadline = time.monotonic() + 20
                while held.hits < threads_n:  # all in flight at once: none waits for another
                    assert time.monotonic() < deadline, f"only {held.hits} of {threads_n} requests in flight"
                    time.sleep(0.01)
                gate.set()
                for w in workers:
                    w.join()
            assert not errors
            assert api.connections_accepted() == threads_n
            for i in range(threads_n):  # later requests reuse the idle connections
                view.patch_pod_network_status("default", f"p{i}", [{"name": "net", "interface": "eth1"}])
            assert api.connections_accepted() == threads_n
            assert api.count("patch", "pods/status") == 2 * threads_n
        finally:
            gate.set()
            view.close()
