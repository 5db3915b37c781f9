"""Prometheus metrics (prometheus-client: the reference exposition library, thread-safe).

A private registry per daemon, so several daemons can live in one test process.
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

# CNI calls span ~2 ms (warm DEL of nothing) to seconds (API stalls); buckets cover both.
_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter("metacni_requests_total", "CNI requests served by the daemon",
                                ["verb", "network", "result"], registry=self.registry)
        self.latency = Histogram("metacni_request_duration_seconds", "CNI request latency in the daemon",
                                 ["verb", "network", "result"], buckets=_BUCKETS, registry=self.registry)
        self.api_requests = Counter("metacni_api_requests_total", "Kubernetes API requests made by the daemon",
                                    ["verb", "resource", "result"], registry=self.registry)
        self.gc_reclaimed = Counter("metacni_gc_reclaimed_total", "Objects reclaimed by garbage collection",
                                    ["kind"], registry=self.registry)
        self.inflight = Gauge("metacni_requests_in_flight", "CNI requests being served", registry=self.registry)
        self.routes = Gauge("metacni_node_routes", "Routes to other nodes' pod CIDRs owned by the daemon",
                            registry=self.registry)
        self.ready = Gauge("metacni_ready", "1 when the daemon serves ADD", registry=self.registry)
        self.http_events = Counter(
            "metacni_http_events_total",
            "Connection-level events of the daemon's HTTP servers (server: cni = the unix socket, health = "
            "the TCP port): refused_peer, read_timeout, too_large, bad_request, queue_full, accept_error, "
            "thread_start_failed, write_failed, loop_error", ["server", "event"], registry=self.registry)
        self.pending_dels = Gauge("metacni_pending_dels", "DELs recorded by the shim and not carried out yet",
                                  registry=self.registry)
        self.status_pending = Gauge("metacni_network_status_pending",
                                    "Pods whose network-status annotation is queued or being retried",
                                    registry=self.registry)
        self.status_writes = Counter("metacni_network_status_writes_total",
                                     "network-status write attempts by outcome: ok, retry (failed, tried again "
                                     "later), gone (the pod was deleted or re-created), dropped (queue full)",
                                     ["result"], registry=self.registry)

    def events(self, server: str) -> Callable[[str], None]:
        """A counter callback for one of the HTTP servers."""
        return lambda event: self.http_events.labels(server, event).inc()

    def observe(self, verb: str, network: str, result: str, seconds: float) -> None:
        self.requests.labels(verb, network, result).inc()
        self.latency.labels(verb, network, result).observe(seconds)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
