"""Serving a process's Prometheus registry on ``/metrics`` (scorer, learner, drift monitor)."""

from __future__ import annotations

import logging

from prometheus_client import REGISTRY, CollectorRegistry, start_http_server

log = logging.getLogger("fraudstream.infra.metrics")


def serve_metrics(port: int, host: str, registry: CollectorRegistry = REGISTRY) -> bool:
    """Serve ``registry`` on ``host:port`` in a daemon thread; ``port`` 0 means off.

    A port that is taken is logged as an error and the worker goes on: deciding transactions
    matters more than exposing metrics about it. Returns whether it is served.
    """
    if not port:
        return False
    try:
        start_http_server(port, host, registry=registry)
    except OSError as exc:
        log.error("/metrics not served on %s:%d: %s", host, port, exc)
        return False
    log.info("/metrics on http://%s:%d/metrics", host, port)
    return True
