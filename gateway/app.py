"""A gateway node's own web API, for the agency's staff: a thin Flask layer over
:mod:`gateway.publications`, :mod:`gateway.local_links` and :mod:`gateway.readiness`.

- ``GET /v1/publications`` (staff): the node's latest publications, from its publication log;
- ``POST /v1/publications`` (operator): publish now, synchronously, one at a time per node;
- ``GET /v1/links`` (staff): the service's links resolved to the agency's own record IDs;
- ``GET /healthz``, ``GET /readyz``, ``GET /openapi.json``: public, and carry no data.

The API is local to the agency and denies by default (:mod:`gateway.staff_access`). Errors are
RFC 9457 problem details with a stable ``type``. The node's key material and policy are opened
at start-up, so a misconfigured node does not start (fail closed).

Run: ``gunicorn -c deploy/gateway.gunicorn.conf.py 'gateway.app:app_from_environment()'`` or
``placelink gateway serve``, with the PLACELINK_NODE_* variables of
:mod:`gateway.node_settings` (docs/agency-it.md).
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from flask import Blueprint, Flask, Response, current_app, jsonify, make_response, request

from gateway.local_links import LinkageServiceError, local_links
from gateway.node import Publication, publish
from gateway.node_settings import (
    NodeSettings,
    load_material,
    service_client,
    settings_from_environment,
)
from gateway.openapi import openapi_document
from gateway.publications import (
    KEEP,
    PublicationInProgress,
    PublicationLog,
    publish_and_record,
)
from gateway.readiness import readiness_checks
from gateway.staff_access import NotAuthenticated, Role, authorise
from keys.errors import InputError, KeyMaterialError, PlacelinkError
from policies.problems import ProblemCatalogue, ProblemType, problem_parts
from policies.telemetry import install_request_telemetry, metrics_exposition

PROBLEMS = ProblemCatalogue.with_common(
    ProblemType(NotAuthenticated, 401, "unauthorized", 'Bearer realm="placelink-node"'),
    ProblemType(PublicationInProgress, 409, "publication-in-progress"),
    ProblemType(LinkageServiceError, 502, "linkage-service"),
    ProblemType(KeyMaterialError, 500, "key-material"),
)
node_api = Blueprint("node_api", __name__)


@dataclass(frozen=True)
class NodeState:
    """What the routes share: the settings, the policy id loaded at start-up, the clock."""

    settings: NodeSettings
    policy_id: str
    today: Callable[[], dt.date]


def problem(status: int, slug: str, title: str, detail: str = "", **extra: Any) -> Response:
    """An RFC 9457 problem response (:mod:`policies.problems`)."""
    return make_response(problem_parts(status, slug, title, detail, **extra))


def _state() -> NodeState:
    state: NodeState = current_app.extensions["placelink-node"]
    return state


def require_caller(role: Role) -> str:
    """The one place the API decides who may call; swap :func:`authorise` to change how."""
    header = request.headers.get("Authorization", "")
    return authorise(header, role=role, tokens=_state().settings.staff)


def _limit(raw: str | None) -> int:
    if raw is None:
        return 20
    if not raw.isdigit() or not 1 <= int(raw) <= KEEP:
        raise InputError("limit must be a whole number", fix=f"use ?limit=N with 1 <= N <= {KEEP}")
    return int(raw)


@node_api.get("/v1/publications")
def get_publications() -> Response:
    require_caller("staff")
    settings = _state().settings
    entries = PublicationLog(settings.node.state_dir).recent(_limit(request.args.get("limit")))
    return jsonify({"source": settings.node.source, "publications": entries})


def _attempt(state: NodeState) -> Callable[[], Publication]:
    """One publication with freshly opened material (a rotated key is used at once)."""

    def attempt() -> Publication:
        settings, today = state.settings, state.today()
        material = load_material(settings, today=today)
        return publish(
            settings.node,
            policy=material.policy,
            schema=material.schema,
            secret=material.secret,
            node_key=material.node_key,
            trust=settings.trust,
            epoch=material.secret.epoch,
            today=today,
            auth=service_client(settings, material.node_key).headers,
        )

    return attempt


@node_api.post("/v1/publications")
def post_publication() -> tuple[Response, int] | Response:
    caller = require_caller("operator")
    state = _state()
    record, error = publish_and_record(
        _attempt(state), state_dir=state.settings.node.state_dir, trigger="api",
        requested_by=caller,
    )  # fmt: skip
    if error is not None:
        current_app.logger.warning("publication %s failed: %s", record.publication_id, error)
        return problem(502, "publication-failed", error.message, error.fix,
                       publication_id=record.publication_id)  # fmt: skip
    return jsonify(record.as_json()), 201


@node_api.get("/v1/links")
def get_links() -> Response:
    require_caller("staff")
    state = _state()
    policy_id = request.args.get("policy", state.policy_id)
    if policy_id != state.policy_id:
        raise InputError(
            "this node publishes under another policy",
            fix=f"ask for ?policy={state.policy_id}, or leave policy out",
        )
    client = service_client(
        state.settings, load_material(state.settings, today=state.today()).node_key
    )
    try:
        token = client.access_token()
    except PlacelinkError as exc:
        raise LinkageServiceError(exc.message, fix=exc.fix) from None
    found = local_links(state.settings.node, policy_id, token=token)
    wanted = request.args.get("record_id")
    links = [vars(x) for x in found.links if wanted is None or x.record_id == wanted]
    return jsonify(
        {
            "policy_id": found.policy_id,
            "source": found.source,
            "records": len(found.links),
            "entities": found.entities,
            "unresolved": found.unresolved,
            "links": links,
        }
    )


@node_api.get("/readyz")
def ready() -> tuple[Response, int]:
    state = _state()
    checks = readiness_checks(state.settings, today=state.today())
    for name, why in checks.items():
        if why is not None:
            current_app.logger.warning("not ready: %s: %s", name, why)
    ok = all(why is None for why in checks.values())
    body = {
        "status": "ready" if ok else "not-ready",
        "checks": {name: "ok" if why is None else "failed" for name, why in checks.items()},
    }
    return jsonify(body), 200 if ok else 503


@node_api.get("/healthz")
def health() -> Response:
    return jsonify({"status": "ok"})


@node_api.get("/metrics")
def get_metrics() -> Response:
    """Prometheus metrics of this node's requests (staff or operator token)."""
    require_caller("staff")
    body, content_type = metrics_exposition()
    return Response(body, content_type=content_type)


@node_api.get("/openapi.json")
def get_openapi() -> Response:
    """The OpenAPI 3.1 document (public: it describes shapes, never data)."""
    return jsonify(openapi_document())


def _handle(exc: PlacelinkError) -> Response:
    return make_response(PROBLEMS.parts(exc))


def create_node_app(settings: NodeSettings, *, today: Callable[[], dt.date] | None = None) -> Flask:
    """The app factory. Opens the policy (trusted, in force) and both key files once, so that
    a node that could not publish does not start. ``today`` is injectable for tests."""
    clock = today or (lambda: dt.datetime.now(dt.UTC).date())
    material = load_material(settings, today=clock())
    app = Flask("gateway")
    if not settings.staff.staff_sha256 and not settings.staff.operator_sha256:
        app.logger.warning("no staff or operator token is configured: every call is denied")
    app.extensions["placelink-node"] = NodeState(settings, material.policy.policy_id, clock)
    # Blueprints and cross-cutting hooks (metrics, request logs) are registered here.
    install_request_telemetry(app, service="gateway")  # JSON lines, value-free; /metrics
    app.register_blueprint(node_api)
    app.register_error_handler(PlacelinkError, _handle)
    app.register_error_handler(404, lambda e: problem(404, "not-found", "no such endpoint"))
    app.register_error_handler(
        405, lambda e: problem(405, "method-not-allowed", "method not allowed")
    )
    return app


def app_from_environment() -> Flask:
    """Gunicorn entry point: ``gunicorn 'gateway.app:app_from_environment()'``, configured by
    the PLACELINK_NODE_* variables (see :mod:`gateway.node_settings`)."""
    return create_node_app(settings_from_environment(os.environ))
