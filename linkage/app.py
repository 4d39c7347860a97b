"""The linkage service's web app: a thin Flask layer over :mod:`linkage.service`.

Errors are RFC 9457 problem details with a stable ``type``. The walking skeleton
authenticates uploads by their signatures (see :mod:`linkage.intake`) and every other
endpoint by a bearer token whose SHA-256 the operator configures; anything else is denied.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
from pathlib import Path

from flask import Blueprint, Flask, Response, current_app, jsonify, request

from keys.errors import (
    AccessError,
    ConfigError,
    InputError,
    KeyMaterialError,
    PlacelinkError,
    PolicyError,
    StorageError,
)
from linkage.hotspot_desk import HotspotDesk, PrivacyBudgetSpent
from linkage.intake import ReplayError, accept_batch
from linkage.query_log import analyst_id
from linkage.service import LinkageService
from policies.linkage_schema import load_schema
from policies.model import load_policy

PROBLEM_BASE = "https://placelink.example/problems/"
_STATUS: list[tuple[type[PlacelinkError], int, str]] = [
    (ReplayError, 409, "replay"),
    (PrivacyBudgetSpent, 403, "privacy-budget-spent"),
    (KeyMaterialError, 401, "bad-signature"),
    (AccessError, 403, "forbidden"),
    (PolicyError, 403, "policy-refused"),
    (InputError, 422, "invalid-input"),
    (StorageError, 503, "storage-unavailable"),
    (ConfigError, 500, "configuration"),
]
api = Blueprint("api", __name__)


def problem(status: int, slug: str, title: str, detail: str = "") -> Response:
    body = {"type": PROBLEM_BASE + slug, "title": title, "status": status, "detail": detail}
    response = jsonify(body)
    response.status_code = status
    response.content_type = "application/problem+json"
    return response


def _service() -> LinkageService:
    service: LinkageService = current_app.extensions["placelink"]
    return service


def require_analyst() -> str:
    """The caller's analyst id (from a valid bearer token); anyone else is denied."""
    header = request.headers.get("Authorization", "")
    token = header.removeprefix("Bearer ").strip() if header.startswith("Bearer ") else ""
    digest = hashlib.sha256(token.encode()).hexdigest()
    allowed: list[str] = current_app.config["TOKEN_SHA256"]
    if not token or not any(hmac.compare_digest(digest, a) for a in allowed):
        raise AccessError(
            "a valid bearer token is required", fix="send Authorization: Bearer TOKEN"
        )
    return analyst_id(digest)


@api.post("/v1/batches")
def post_batch() -> tuple[Response, int]:
    service = _service()
    result = accept_batch(
        store=service.store,
        policies=service.policies,
        schemas=service.schemas,
        content_type=request.content_type,
        body=request.get_data(cache=False),
        manifest_b64=request.headers.get("Placelink-Manifest"),
        signature_b64=request.headers.get("Placelink-Signature"),
        now=dt.datetime.now(dt.UTC),
    )
    body = {
        "batch_id": result.batch_id,
        "records": result.records,
        "already_stored": result.already_stored,
    }
    return jsonify(body), 200 if result.already_stored else 201


@api.post("/v1/policies/<policy_id>/link-runs")
def post_link_run(policy_id: str) -> tuple[Response, int]:
    require_analyst()
    return jsonify(_service().run_linkage(policy_id)), 201


@api.get("/v1/policies/<policy_id>/links/<source>")
def get_links(policy_id: str, source: str) -> Response:
    require_analyst()
    links = _service().entity_links(policy_id, source)
    return jsonify(
        {
            "policy_id": policy_id,
            "source": source,
            "links": [{"pseudonym": p, "entity_id": e} for p, e in links],
        }
    )


@api.get("/healthz")
def health() -> Response:
    return jsonify({"status": "ok"})


def _handle(exc: PlacelinkError) -> Response:
    for cls, status, slug in _STATUS:
        if isinstance(exc, cls):
            return problem(status, slug, exc.message, exc.fix)
    return problem(500, "error", exc.message, exc.fix)


def create_app(
    database_url: str, policy_paths: list[str], token_sha256: list[str], schema_paths: list[str]
) -> Flask:
    """The app factory: one service over a database, the policies it serves and the linkage
    schemas they pin (uploads under a policy whose schema is not held here are refused)."""
    policies = [load_policy(Path(p)) for p in policy_paths]
    schemas = [load_schema(Path(p)) for p in schema_paths]
    app = Flask("linkage")
    app.config["TOKEN_SHA256"] = list(token_sha256)
    service = LinkageService.create(database_url, policies, schemas)
    app.extensions["placelink"] = service
    app.extensions["placelink-hotspots"] = HotspotDesk(service.store, service.policies)
    app.register_blueprint(api)
    from linkage.dashboard import dashboard
    from linkage.hotspot_routes import hotspot_api

    app.register_blueprint(hotspot_api)
    app.register_blueprint(dashboard)
    app.register_error_handler(PlacelinkError, _handle)
    app.register_error_handler(404, lambda e: problem(404, "not-found", "no such endpoint"))
    app.register_error_handler(
        405, lambda e: problem(405, "method-not-allowed", "method not allowed")
    )
    return app


def app_from_environment() -> Flask:
    """Gunicorn entry point: ``gunicorn 'linkage.app:app_from_environment()'``.

    PLACELINK_DATABASE_URL, PLACELINK_POLICIES and PLACELINK_SCHEMAS (paths separated by ':'),
    and PLACELINK_TOKEN_SHA256 (hex digests separated by ',').
    """
    import os

    url = os.environ.get("PLACELINK_DATABASE_URL", "sqlite:///placelink-linkage.db")
    paths = [p for p in os.environ.get("PLACELINK_POLICIES", "").split(":") if p]
    tokens = [t for t in os.environ.get("PLACELINK_TOKEN_SHA256", "").split(",") if t]
    schemas = [p for p in os.environ.get("PLACELINK_SCHEMAS", "").split(":") if p]
    if not paths:
        raise ConfigError(
            "PLACELINK_POLICIES names no policy file",
            fix="set PLACELINK_POLICIES=/path/policy.yaml",
        )
    return create_app(url, paths, tokens, schemas)
