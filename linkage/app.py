"""The linkage service's web app: a thin Flask layer over :mod:`linkage.service`.

Errors are RFC 9457 problem details with a stable ``type``. The walking skeleton
authenticates uploads by their signatures (see :mod:`linkage.intake`) and every other
endpoint by a bearer token whose SHA-256 the operator configures; anything else is denied.

Policies load only when trusted (:func:`policies.approvals.load_trusted_policy`): valid,
active, in force, and approved by every required DPO whose key is in ``trusted_dpo_keys``.
No trusted key configured means no policy loads and the app does not start (fail closed);
``allow_unsigned_policies_unsafe`` skips the approval check, for tests only.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
from collections.abc import Callable
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
from linkage.engine import Engine
from linkage.hotspot_desk import HotspotDesk, PrivacyBudgetSpent
from linkage.intake import MAX_REQUEST_BYTES, ReplayError, accept_batch
from linkage.openapi import openapi_document
from linkage.query_log import analyst_id
from linkage.revocations import is_fingerprint
from linkage.service import LinkageService
from policies.approvals import PolicyTrust, load_trusted_policy
from policies.decisions import require
from policies.linkage_schema import load_schema
from policies.model import Policy, Request

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


def _require_token(setting: str = "TOKEN_SHA256") -> str:
    """The SHA-256 of the caller's bearer token, when it is one configured under ``setting``;
    anyone else is denied."""
    header = request.headers.get("Authorization", "")
    token = header.removeprefix("Bearer ").strip() if header.startswith("Bearer ") else ""
    digest = hashlib.sha256(token.encode()).hexdigest()
    allowed: list[str] = current_app.config[setting]
    if not token or not any(hmac.compare_digest(digest, a) for a in allowed):
        raise AccessError(
            "a valid bearer token is required", fix="send Authorization: Bearer TOKEN"
        )
    return digest


def require_analyst() -> str:
    """The caller's analyst id (from a valid analyst bearer token); anyone else is denied."""
    return analyst_id(_require_token("TOKEN_SHA256"))


def _hotspot_rules(service: LinkageService) -> Callable[[Policy, str], None]:
    """The policy's rule decision on a hot-spot query (view_hotspots, grouped by ``by``),
    taken before any count and recorded. Analyst tokens are not bound to a party yet, so the
    analyst asks as the role ``recipient``."""

    def authorise(policy: Policy, by: str) -> None:
        require(policy, Request("view_hotspots", "recipient", by=by), recorder=service.decisions)

    return authorise


@api.post("/v1/batches")
def post_batch() -> tuple[Response, int]:
    service = _service()
    if (request.content_length or 0) > MAX_REQUEST_BYTES:  # refused before it is read
        raise InputError("the batch is over the size limit", fix="send it with POST /v1/uploads")
    result = accept_batch(
        store=service.store,
        policies=service.policies,
        schemas=service.schemas,
        content_type=request.content_type,
        body=request.get_data(cache=False),
        manifest_b64=request.headers.get("Placelink-Manifest"),
        signature_b64=request.headers.get("Placelink-Signature"),
        now=dt.datetime.now(dt.UTC),
        recorder=service.decisions,
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
    query = request.get_json(silent=True) or {}
    if not isinstance(query, dict):
        raise InputError("the body must be a JSON object", fix='send {"epoch": N} or no body')
    epoch = query.get("epoch")
    if epoch is not None and (not isinstance(epoch, int) or isinstance(epoch, bool)):
        raise InputError("epoch must be an integer", fix='send {"epoch": N} or no body')
    incremental = bool(query.get("incremental", False))
    result = _service().run_linkage(policy_id, epoch=epoch, incremental=incremental)
    return jsonify(result), 201


@api.post("/v1/revocations")
def post_revocation() -> tuple[Response, int]:
    """Revoke a node key (admin token): its uploads are refused from the next request on."""
    _require_token("ADMIN_TOKEN_SHA256")
    body = request.get_json(silent=True) or {}
    node_key = body.get("node_key") if isinstance(body, dict) else None
    if not isinstance(node_key, str) or not is_fingerprint(node_key):
        raise InputError("node_key must be a fingerprint", fix='send {"node_key": "ed25519:..."}')
    revoked_at = _service().store.revoke_key(node_key, now=dt.datetime.now(dt.UTC))
    return jsonify({"node_key": node_key, "revoked_at": revoked_at.isoformat()}), 201


@api.get("/v1/revocations")
def get_revocations() -> Response:
    _require_token("ADMIN_TOKEN_SHA256")
    rows = _service().store.revoked_keys()
    return jsonify({"revoked": [{"node_key": k, "revoked_at": t.isoformat()} for k, t in rows]})


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


@api.get("/openapi.json")
def get_openapi() -> Response:
    """The OpenAPI 3.1 document (public: it describes shapes, never data)."""
    return jsonify(openapi_document())


@api.get("/healthz")
def health() -> Response:
    return jsonify({"status": "ok"})


def _handle(exc: PlacelinkError) -> Response:
    for cls, status, slug in _STATUS:
        if isinstance(exc, cls):
            return problem(status, slug, exc.message, exc.fix)
    return problem(500, "error", exc.message, exc.fix)


def _engine(dask_scheduler: str) -> Engine | None:
    """The Dask engine when a scheduler is named, else the service's default (local)."""
    if not dask_scheduler:
        return None
    from linkage.dask_engine import DaskEngine

    return DaskEngine(dask_scheduler)


def create_app(
    database_url: str,
    policy_paths: list[str],
    token_sha256: list[str],
    schema_paths: list[str],
    *,
    trusted_dpo_keys: list[str] | None = None,
    allow_unsigned_policies_unsafe: bool = False,
    today: dt.date | None = None,
    admin_token_sha256: list[str] | None = None,
    dask_scheduler: str = "",
) -> Flask:
    """The app factory: one service over a database, the policies it serves and the linkage
    schemas they pin (uploads under a policy whose schema is not held here are refused).
    Each policy must be approved by DPOs whose keys are in ``trusted_dpo_keys``. Without an
    admin token, the admin endpoints (revocations) refuse everyone. With a Dask scheduler
    address, link runs compare on that cluster."""
    trust = PolicyTrust(frozenset(trusted_dpo_keys or ()), allow_unsigned_policies_unsafe)
    day = today or dt.datetime.now(dt.UTC).date()
    policies = [load_trusted_policy(Path(p), trust=trust, today=day) for p in policy_paths]
    schemas = [load_schema(Path(p)) for p in schema_paths]
    app = Flask("linkage")
    if allow_unsigned_policies_unsafe:
        app.logger.warning("allow_unsigned_policies_unsafe is set: DPO approvals are NOT checked")
    app.config["TOKEN_SHA256"] = list(token_sha256)
    app.config["ADMIN_TOKEN_SHA256"] = list(admin_token_sha256 or [])
    service = LinkageService.create(database_url, policies, schemas, _engine(dask_scheduler))
    app.extensions["placelink"] = service
    app.extensions["placelink-hotspots"] = HotspotDesk(
        service.store, service.policies, authorise=_hotspot_rules(service)
    )
    app.register_blueprint(api)
    from linkage.dashboard import dashboard
    from linkage.hotspot_routes import hotspot_api

    app.register_blueprint(hotspot_api)
    from linkage.upload_routes import uploads_api

    app.register_blueprint(uploads_api)
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
    PLACELINK_TOKEN_SHA256 and PLACELINK_ADMIN_TOKEN_SHA256 (hex digests separated by ','),
    PLACELINK_TRUSTED_DPO_KEYS (DPO key fingerprints separated by ','; missing or empty: no
    policy loads), optionally PLACELINK_DASK_SCHEDULER (a dask.distributed scheduler address
    for link runs) and, for tests only, PLACELINK_ALLOW_UNSIGNED_POLICIES_UNSAFE=1.
    """
    import os

    url = os.environ.get("PLACELINK_DATABASE_URL", "sqlite:///placelink-linkage.db")
    paths = [p for p in os.environ.get("PLACELINK_POLICIES", "").split(":") if p]
    tokens = [t for t in os.environ.get("PLACELINK_TOKEN_SHA256", "").split(",") if t]
    schemas = [p for p in os.environ.get("PLACELINK_SCHEMAS", "").split(":") if p]
    trusted = [k.strip() for k in os.environ.get("PLACELINK_TRUSTED_DPO_KEYS", "").split(",")]
    unsafe = os.environ.get("PLACELINK_ALLOW_UNSIGNED_POLICIES_UNSAFE", "") == "1"
    if not paths:
        raise ConfigError(
            "PLACELINK_POLICIES names no policy file",
            fix="set PLACELINK_POLICIES=/path/policy.yaml",
        )
    admins = [t for t in os.environ.get("PLACELINK_ADMIN_TOKEN_SHA256", "").split(",") if t]
    return create_app(
        url,
        paths,
        tokens,
        schemas,
        trusted_dpo_keys=[k for k in trusted if k],
        allow_unsigned_policies_unsafe=unsafe,
        admin_token_sha256=admins,
        dask_scheduler=os.environ.get("PLACELINK_DASK_SCHEDULER", ""),
    )
