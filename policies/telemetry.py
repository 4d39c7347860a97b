"""Request telemetry shared by both services (linkage service, gateway node), free of any web
framework: Prometheus metrics (multi-process aware, for gunicorn) and one JSON log line per
request (:mod:`policies.log_lines`).

Hook a WSGI app (Flask or any app with ``wsgi_app`` and a werkzeug ``url_map``) in one line::

    install_request_telemetry(app, service="gateway")

Per request it records the route *template* (``/v1/policies/<policy_id>/hotspots``, never the
raw path), the method, the status and the latency, with a fresh request id (also sent back as
``X-Request-Id``; a client's own id is never taken, as it could carry anything) and the
caller's digest: ``sha256(sha256(token))`` cut to 16 hex characters, the same digest as the
analyst id in the ``queries`` table. Never the body, a header value or the query string.

Gunicorn runs several worker processes: with ``PROMETHEUS_MULTIPROC_DIR`` set (by
``deploy/gunicorn.conf.py``) every worker writes its samples there and any worker's
``/metrics`` answers for all of them (:func:`metrics_exposition`).
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, Protocol

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)

from policies.log_lines import configure_logging

MULTIPROC_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
UNMATCHED = "<unmatched>"

HTTP_REQUESTS = Counter(
    "placelink_http_requests",
    "HTTP requests answered, by service, method, route template and status.",
    ["service", "method", "route", "status"],
)
HTTP_LATENCY = Histogram(
    "placelink_http_request_duration_seconds",
    "Time to answer an HTTP request (until the response starts), by route template.",
    ["service", "method", "route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 600),
)
_log = logging.getLogger("placelink.http")

Environ = dict[str, Any]
StartResponse = Callable[..., Any]
WsgiApp = Callable[[Environ, StartResponse], Iterable[bytes]]


class RouteMap(Protocol):
    """What we need of werkzeug's ``Map``: match a request to its rule."""

    def bind_to_environ(self, environ: Environ) -> Any: ...


def caller_digest(environ: Environ) -> str:
    """16 hex characters naming the bearer of the request's token ('' without one)."""
    header = str(environ.get("HTTP_AUTHORIZATION", ""))
    if not header.startswith("Bearer "):
        return ""
    token = header.removeprefix("Bearer ").strip().encode()
    return hashlib.sha256(hashlib.sha256(token).digest()).hexdigest()[:16]


def route_template(routes: RouteMap | None, environ: Environ) -> str:
    if routes is None:
        return UNMATCHED
    try:
        rule, _ = routes.bind_to_environ(environ).match(return_rule=True)
    except Exception:  # not found, wrong method, redirect: one label for all of them
        return UNMATCHED
    return str(rule.rule)


class RequestTelemetry:
    """WSGI middleware: metrics and a JSON log line for every request."""

    def __init__(self, app: WsgiApp, *, service: str, routes: RouteMap | None = None) -> None:
        self.app, self.service, self.routes = app, service, routes

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        started = time.perf_counter()
        request_id = uuid.uuid4().hex
        environ["placelink.request_id"] = request_id
        status = [500]

        def start(code: str, headers: list[tuple[str, str]], *info: Any) -> Any:
            status[0] = int(code.split(" ", 1)[0])
            return start_response(code, [*headers, ("X-Request-Id", request_id)], *info)

        try:
            return self.app(environ, start)
        finally:
            self._record(environ, request_id, status[0], time.perf_counter() - started)

    def _record(self, environ: Environ, request_id: str, status: int, seconds: float) -> None:
        method = str(environ.get("REQUEST_METHOD", ""))
        method = method if method in _METHODS else "OTHER"
        route = route_template(self.routes, environ)
        HTTP_REQUESTS.labels(self.service, method, route, str(status)).inc()
        HTTP_LATENCY.labels(self.service, method, route).observe(seconds)
        fields: dict[str, Any] = {
            "service": self.service,
            "request_id": request_id,
            "method": method,
            "route": route,
            "status": status,
            "latency_ms": round(seconds * 1000, 2),
        }
        caller = caller_digest(environ)
        if caller:
            fields["caller"] = caller
        _log.info("request", extra=fields)


def install_request_telemetry(app: Any, *, service: str) -> None:
    """Wrap a Flask app (anything with ``wsgi_app`` and ``url_map``) and log as JSON lines."""
    configure_logging()
    app.wsgi_app = RequestTelemetry(app.wsgi_app, service=service, routes=app.url_map)


def metrics_exposition() -> tuple[bytes, str]:
    """The Prometheus text exposition of this process, or of every gunicorn worker when
    ``PROMETHEUS_MULTIPROC_DIR`` is set; and its content type."""
    if os.environ.get(MULTIPROC_VARIABLE):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST


def prepare_multiprocess_directory(path: str) -> None:
    """Empty the samples directory at server start: old workers' files would count twice."""
    folder = Path(path)
    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.glob("*.db"):
        stale.unlink()


def worker_exited(pid: int) -> None:
    """Gunicorn's ``child_exit``: a dead worker's live gauges stop counting."""
    if os.environ.get(MULTIPROC_VARIABLE):
        multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]
