"""Prometheus metrics of one server: request counts and latencies by route, index sizes, stored events."""

from __future__ import annotations

import time
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class ServerMetrics:
    """Its own registry (several apps in one process, e.g. tests, do not collide)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("fusionrec_requests_total", "HTTP requests", ["method", "route", "status"], registry=self.registry)
        self.latency = Histogram("fusionrec_request_seconds", "Request latency", ["method", "route"],
                                 buckets=LATENCY_BUCKETS, registry=self.registry)
        self.index_size = Gauge("fusionrec_index_items", "Items in each vector index", ["space"], registry=self.registry)
        self.events = Gauge("fusionrec_events_stored", "Events in the event store", registry=self.registry)
        self.users = Gauge("fusionrec_users", "Users known to the server", registry=self.registry)
        self.items = Gauge("fusionrec_items", "Items known to the server", registry=self.registry)

    def observe(self, method: str, route: str, status: int, started: float) -> None:
        self.requests.labels(method, route, str(status)).inc()
        self.latency.labels(method, route).observe(time.perf_counter() - started)

    def render(self, stats: dict[str, Any]) -> bytes:
        for space, size in stats["index"].items():
            self.index_size.labels(space).set(size)
        self.events.set(stats["events"])
        self.users.set(stats["n_users"])
        self.items.set(stats["n_items"])
        return generate_latest(self.registry)
