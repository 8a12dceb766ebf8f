"""Serving a process's ``/metrics``, ``/healthz`` and ``/readyz`` (every worker's ops port).

Kubernetes probes and Prometheus scrapes hit the same small HTTP server in a daemon thread:

- ``/metrics``: the registry in Prometheus text format;
- ``/healthz``: 200 while the process serves at all (liveness: a wedged interpreter fails it);
- ``/readyz``: 200 when ``ready()`` says the worker does its job (e.g. has its partitions or
  its model), 503 otherwise; without ``ready`` it equals ``/healthz``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import REGISTRY, CollectorRegistry, make_wsgi_app

log = logging.getLogger("fraudstream.infra.metrics")

StartResponse = Callable[..., Any]


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        """Scrapes and probes every few seconds would drown the worker's log."""


def ops_app(registry: CollectorRegistry, ready: Callable[[], bool] | None = None) -> Callable[
        [dict[str, Any], StartResponse], Iterable[bytes]]:
    """The WSGI app behind the ops port (see module doc)."""
    metrics = make_wsgi_app(registry)

    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "/")
        if path in ("/healthz", "/readyz"):
            ok = True
            if path == "/readyz" and ready is not None:
                try:
                    ok = bool(ready())
                except Exception:  # a failing check means not ready, never a 500
                    log.exception("readiness check failed")
                    ok = False
            status = "200 OK" if ok else "503 Service Unavailable"
            start_response(status, [("Content-Type", "application/json")])
            return [b'{"status": "ok"}' if ok else b'{"status": "not ready"}']
        return metrics(environ, start_response)

    return app


def serve_metrics(port: int, host: str, registry: CollectorRegistry = REGISTRY,
                  ready: Callable[[], bool] | None = None) -> bool:
    """Serve the ops app on ``host:port`` in a daemon thread; ``port`` 0 means off.

    A port that is taken is logged as an error and the worker goes on: deciding transactions
    matters more than exposing metrics about it. Returns whether it is served.
    """
    if not port:
        return False
    try:
        server = make_server(host, port, ops_app(registry, ready), _Server, _QuietHandler)
    except OSError as exc:
        log.error("/metrics not served on %s:%d: %s", host, port, exc)
        return False
    threading.Thread(target=server.serve_forever, name="ops-http", daemon=True).start()
    log.info("/metrics, /healthz, /readyz on http://%s:%d", host, port)
    return True
