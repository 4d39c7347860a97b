"""Operations endpoints and hooks of the linkage service: a thin Flask layer over
:mod:`linkage.readiness`, :mod:`linkage.metrics` and :mod:`policies.telemetry`.

``GET /readyz`` (public, like ``/healthz``: it names checks, never data) answers 200 when the
database answers, is at the head migration and a policy is loaded, else 503 problem+json.
``GET /metrics`` (Prometheus text) needs a bearer token whose SHA-256 is in
PLACELINK_METRICS_TOKEN_SHA256; without one configured it refuses everyone (fail closed).
Counts are aggregates, but how often and how fast each agency uploads is still nobody's
business but the operator's.
"""

from __future__ import annotations

import hashlib
import hmac
import time

from flask import Blueprint, Flask, Response, current_app, g, jsonify, make_response, request

from linkage import metrics
from linkage.auth import Unauthenticated
from linkage.readiness import check_readiness
from linkage.service import LinkageService
from policies.problems import problem_parts
from policies.telemetry import install_request_telemetry, metrics_exposition

ops_api = Blueprint("ops_api", __name__)
UPLOAD_ROUTE_PREFIXES = ("/v1/batches", "/v1/uploads")
LINK_RUN_ROUTE = "/v1/policies/<policy_id>/link-runs"


@ops_api.get("/readyz")
def get_readiness() -> Response:
    service: LinkageService = current_app.extensions["placelink"]
    readiness = check_readiness(service.store.engine, len(service.policies))
    if readiness.ready:
        return jsonify({"status": "ready", "checks": readiness.checks})
    failed = ", ".join(name for name, result in readiness.checks.items() if result != "ok")
    title, detail = "the service is not ready", f"failed checks: {failed}"
    return make_response(problem_parts(503, "not-ready", title, detail, checks=readiness.checks))


@ops_api.get("/metrics")
def get_metrics() -> Response:
    header = request.headers.get("Authorization", "")
    token = header.removeprefix("Bearer ").strip() if header.startswith("Bearer ") else ""
    digest = hashlib.sha256(token.encode()).hexdigest()
    allowed: list[str] = current_app.config["METRICS_TOKEN_SHA256"]
    if not token or not any(hmac.compare_digest(digest, a) for a in allowed):
        raise Unauthenticated(
            "a valid metrics bearer token is required",
            fix="send Authorization: Bearer TOKEN (its SHA-256 in PLACELINK_METRICS_TOKEN_SHA256)",
        )
    body, content_type = metrics_exposition()
    return Response(body, content_type=content_type)


def _start_clock() -> None:
    g.placelink_started = time.perf_counter()


def _problem_type(response: Response) -> str:
    body = response.get_json(silent=True) if response.is_json else None
    kind = body.get("type", "") if isinstance(body, dict) else ""
    return str(kind).rsplit("/", 1)[-1] or f"status-{response.status_code}"


def _count_outcome(response: Response) -> Response:
    rule = request.url_rule.rule if request.url_rule is not None else ""
    failed = response.status_code >= 400
    if rule.startswith(UPLOAD_ROUTE_PREFIXES) and request.method == "POST":
        body = response.get_json(silent=True) if response.is_json else None
        if failed:
            metrics.record_upload(_problem_type(response))
        elif isinstance(body, dict) and body.get("already_stored"):
            metrics.record_upload("already_stored")
        elif rule != "/v1/uploads":  # an upload opened or resumed has no outcome yet
            records = body.get("records", 0) if isinstance(body, dict) else 0
            metrics.record_upload("accepted", records if isinstance(records, int) else 0)
    elif rule == LINK_RUN_ROUTE and request.method == "POST":
        seconds = time.perf_counter() - g.get("placelink_started", time.perf_counter())
        metrics.record_link_run(_problem_type(response) if failed else "ok", seconds)
    return response


def install_operations(
    app: Flask, service: LinkageService, *, metrics_token_sha256: list[str]
) -> None:
    """/readyz and /metrics, request telemetry, and the service's outcome counters."""
    app.config["METRICS_TOKEN_SHA256"] = list(metrics_token_sha256)
    install_request_telemetry(app, service="linkage")
    app.before_request(_start_clock)
    app.after_request(_count_outcome)
    service.store.on_query.append(metrics.record_query)
    app.register_blueprint(ops_api)
