"""The linkage service's web app: a thin Flask layer over :mod:`linkage.service`.

Errors are RFC 9457 problem details with a stable ``type``. Every endpoint denies by default:
each data endpoint first calls :func:`linkage.auth_routes.require_scope` with the scope it
needs (OAuth2 access tokens, see :mod:`linkage.auth`); 401 for no valid token (with
``WWW-Authenticate``), 403 for a scope, policy or party the token does not hold. Uploads
also carry the node's signature on the manifest (see :mod:`linkage.intake`). Public: health,
the OpenAPI document, the token endpoint, and the dashboard's page and assets (they hold no
data).

Policies load only when trusted (:func:`policies.approvals.load_trusted_policy`): valid,
active, in force, and approved by every required DPO whose key is in ``trusted_dpo_keys``.
No trusted key configured means no policy loads and the app does not start (fail closed);
``allow_unsigned_policies_unsafe`` skips the approval check, for tests only.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path

from flask import Blueprint, Flask, Response, current_app, g, jsonify, make_response, request
from sqlalchemy.exc import SQLAlchemyError
from werkzeug.exceptions import HTTPException

from keys import SigningKey
from keys.errors import AccessError, ConfigError, InputError, KeyMaterialError, PlacelinkError
from linkage.assertion_ledger import AssertionLedger
from linkage.auth import Caller, TokenAuthority, Unauthenticated
from linkage.auth_routes import install_auth, require_party, require_scope
from linkage.engine import Engine
from linkage.hotspot_desk import HotspotDesk, PrivacyBudgetSpent
from linkage.intake import MAX_REQUEST_BYTES, ReplayError, accept_batch, decode_manifest
from linkage.openapi import openapi_document
from linkage.revocations import is_fingerprint
from linkage.service import LinkageService
from policies.approvals import PolicyTrust, load_trusted_policy
from policies.decisions import require
from policies.linkage_schema import load_schema
from policies.model import Policy, Request
from policies.problems import PROBLEM_BASE as PROBLEM_BASE  # re-exported: tests and clients
from policies.problems import ProblemCatalogue, ProblemType, problem_parts

WWW_AUTHENTICATE = 'Bearer realm="placelink", error="invalid_token"'
PROBLEMS = ProblemCatalogue.with_common(
    ProblemType(ReplayError, 409, "replay"),
    ProblemType(PrivacyBudgetSpent, 403, "privacy-budget-spent"),
    ProblemType(Unauthenticated, 401, "unauthenticated", WWW_AUTHENTICATE),
    ProblemType(KeyMaterialError, 401, "bad-signature"),
)
api = Blueprint("api", __name__)


def problem(status: int, slug: str, title: str, detail: str = "") -> Response:
    """An RFC 9457 problem response (:mod:`policies.problems`)."""
    return make_response(problem_parts(status, slug, title, detail))


def _service() -> LinkageService:
    service: LinkageService = current_app.extensions["placelink"]
    return service


def _hotspot_rules(service: LinkageService) -> Callable[[Policy, str], None]:
    """The policy's rule decision on a hot-spot query (view_hotspots, grouped by ``by``),
    taken before any count and recorded, asked as the calling client's party: its role in
    the policy decides. A party the policy does not name is refused."""

    def authorise(policy: Policy, by: str) -> None:
        caller: Caller = g.placelink_caller
        if caller.party not in {p.id for p in policy.parties}:
            raise AccessError(
                "the token's party is not a party of this policy",
                fix="use a client registered for a party the policy names",
            )
        request_ = Request("view_hotspots", caller.party, by=by)
        require(policy, request_, recorder=service.decisions)

    return authorise


def _check_upload_binding(caller: Caller) -> None:
    """The uploading client acts for the manifest's source and is bound to its policy."""
    manifest, _, _ = decode_manifest(
        request.headers.get("Placelink-Manifest"), request.headers.get("Placelink-Signature")
    )
    caller.require("submit", policy_id=str(manifest["policy_id"]))
    require_party(caller, str(manifest["source"]))


@api.post("/v1/batches")
def post_batch() -> tuple[Response, int]:
    """Store a signed batch: a ``submit`` token of the manifest's source, bound to its policy
    (then intake's own checks, the node signature first)."""
    _check_upload_binding(require_scope("submit"))
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
    require_scope("admin", policy_id=policy_id)
    query = request.get_json(silent=True)
    if query is None and request.get_data(cache=True):
        raise InputError("the link-run request is not JSON", fix='send {"epoch": N} or no body')
    query = {} if query is None else query
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
    """Revoke a node key (scope ``admin``): its uploads are refused from the next request on."""
    require_scope("admin")
    body = request.get_json(silent=True) or {}
    node_key = body.get("node_key") if isinstance(body, dict) else None
    if not isinstance(node_key, str) or not is_fingerprint(node_key):
        raise InputError("node_key must be a fingerprint", fix='send {"node_key": "ed25519:..."}')
    revoked_at = _service().store.key_state.revoke_key(node_key, now=dt.datetime.now(dt.UTC))
    return jsonify({"node_key": node_key, "revoked_at": revoked_at.isoformat()}), 201


@api.get("/v1/revocations")
def get_revocations() -> Response:
    require_scope("admin")
    rows = _service().store.key_state.revoked_keys()
    return jsonify({"revoked": [{"node_key": k, "revoked_at": t.isoformat()} for k, t in rows]})


@api.get("/v1/policies/<policy_id>/links/<source>")
def get_links(policy_id: str, source: str) -> Response:
    """A provider's own records' entity links: scope ``links:read``, bound to the policy,
    and the token's party is ``source`` (nobody reads another party's links)."""
    require_party(require_scope("links:read", policy_id=policy_id), source)
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
    return make_response(PROBLEMS.parts(exc))


_HTTP_SLUGS = {
    400: "bad-request",
    404: "not-found",
    405: "method-not-allowed",
    413: "too-large",
    415: "unsupported-media-type",
}


def _http_problem(exc: HTTPException) -> Response:
    """Werkzeug's own refusals (unknown path, method, an over-long body) as problems too."""
    status = exc.code or 500
    fix = (
        "send at most 64 MiB a request; larger batches go in chunks (POST /v1/uploads)"
        if status == 413
        else ""
    )
    return problem(status, _HTTP_SLUGS.get(status, "http-error"), exc.name.lower(), fix)


def _storage_problem(exc: SQLAlchemyError) -> Response:
    """A database that is down or restarting answers 503 (retry), never 500; no SQL or bound
    value reaches the caller or the log line."""
    current_app.logger.warning("storage unavailable: %s", type(exc).__name__)
    return problem(
        503,
        "storage-unavailable",
        "the store is unavailable; nothing was changed",
        "retry shortly; the service reconnects by itself",
    )


def _engine(dask_scheduler: str) -> Engine | None:
    """The Dask engine when a scheduler is named, else the service's default (local)."""
    if not dask_scheduler:
        return None
    from linkage.dask_engine import DaskEngine

    return DaskEngine(dask_scheduler)


def create_app(
    database_url: str,
    policy_paths: list[str],
    schema_paths: list[str],
    *,
    auth: TokenAuthority | None = None,
    trusted_dpo_keys: list[str] | None = None,
    allow_unsigned_policies_unsafe: bool = False,
    today: dt.date | None = None,
    dask_scheduler: str = "",
    audit_log_path: str = "",
    service_key: SigningKey | None = None,
    metrics_token_sha256: list[str] | None = None,
    migrate_on_start: bool = True,
) -> Flask:
    """The app factory: one service over a database, the policies it serves and the linkage
    schemas they pin (uploads under a policy whose schema is not held here are refused).
    Each policy must be approved by DPOs whose keys are in ``trusted_dpo_keys``. ``auth``
    issues and verifies access tokens; without it every endpoint but the public ones
    (health, readiness, OpenAPI, dashboard page) denies. With a Dask scheduler address, link
    runs compare on that cluster. The database is migrated to head first unless
    ``migrate_on_start`` is False; ``/metrics`` answers the metrics tokens only."""
    trust = PolicyTrust(frozenset(trusted_dpo_keys or ()), allow_unsigned_policies_unsafe)
    day = today or dt.datetime.now(dt.UTC).date()
    policies = [load_trusted_policy(Path(p), trust=trust, today=day) for p in policy_paths]
    schemas = [load_schema(Path(p)) for p in schema_paths]
    app = Flask("linkage")
    if allow_unsigned_policies_unsafe:
        app.logger.warning("allow_unsigned_policies_unsafe is set: DPO approvals are NOT checked")
    service = LinkageService.create(
        database_url, policies, schemas, _engine(dask_scheduler), migrate=migrate_on_start
    )
    app.extensions["placelink"] = service
    from linkage.ops_routes import install_operations

    install_operations(app, service, metrics_token_sha256=metrics_token_sha256 or [])
    app.extensions["placelink-hotspots"] = HotspotDesk(
        service.store, service.policies, authorise=_hotspot_rules(service)
    )
    if auth is not None and auth.replay_ledger is None:  # assertions used once, every worker
        auth.replay_ledger = _ledger(service.store.assertions)
    install_auth(app, auth)
    app.register_blueprint(api)
    from linkage.audit_routes import install_audit
    from linkage.dashboard import dashboard
    from linkage.hotspot_routes import hotspot_api

    app.register_blueprint(hotspot_api)
    from linkage.upload_routes import uploads_api

    app.register_blueprint(uploads_api)
    app.register_blueprint(dashboard)
    install_audit(app, service, log_path=audit_log_path, key=service_key)  # policies/audit.py
    app.config["MAX_CONTENT_LENGTH"] = MAX_REQUEST_BYTES  # over it: 413, before the body is read
    app.register_error_handler(PlacelinkError, _handle)
    app.register_error_handler(SQLAlchemyError, _storage_problem)
    app.register_error_handler(404, lambda e: problem(404, "not-found", "no such endpoint"))
    app.register_error_handler(
        405, lambda e: problem(405, "method-not-allowed", "method not allowed")
    )
    app.register_error_handler(HTTPException, _http_problem)
    return app


def _ledger(ledger: AssertionLedger) -> Callable[[str, float, float], bool]:
    def first_use(jti: str, expires_at: float, now: float) -> bool:
        return ledger.first_use(jti, expires_at=expires_at, now=now)

    return first_use


def app_from_environment() -> Flask:
    """Gunicorn entry point: ``gunicorn 'linkage.app:app_from_environment()'``.

    PLACELINK_DATABASE_URL (or PLACELINK_DATABASE_URL_FILE), PLACELINK_POLICIES and
    PLACELINK_SCHEMAS (paths separated by ':'),
    PLACELINK_TRUSTED_DPO_KEYS (DPO key fingerprints separated by ','; missing or empty: no
    policy loads), the OAuth settings of :func:`linkage.auth_config.authority_from_environment`
    (PLACELINK_CLIENTS, PLACELINK_OAUTH_*, PLACELINK_TOKEN_LIFETIME), optionally
    PLACELINK_DASK_SCHEDULER (a dask.distributed scheduler address for link runs),
    PLACELINK_AUDIT_LOG (the audit log file) and PLACELINK_SERVICE_KEY (its checkpoint key;
    passphrase in PLACELINK_SERVICE_KEY_PASSPHRASE), PLACELINK_METRICS_TOKEN_SHA256 (','
    separated), PLACELINK_MIGRATE_ON_START (default 1; 0 leaves migrating to
    ``placelink linkage migrate``) and, for tests only,
    PLACELINK_ALLOW_UNSIGNED_POLICIES_UNSAFE=1.
    """
    import os

    from linkage.audit_trail import default_log_path, service_key_from_environment
    from linkage.auth_config import authority_from_environment
    from linkage.migrate import database_url_from_environment

    url = database_url_from_environment()
    paths = [p for p in os.environ.get("PLACELINK_POLICIES", "").split(":") if p]
    schemas = [p for p in os.environ.get("PLACELINK_SCHEMAS", "").split(":") if p]
    trusted = [k.strip() for k in os.environ.get("PLACELINK_TRUSTED_DPO_KEYS", "").split(",")]
    unsafe = os.environ.get("PLACELINK_ALLOW_UNSIGNED_POLICIES_UNSAFE", "") == "1"
    if not paths:
        raise ConfigError(
            "PLACELINK_POLICIES names no policy file",
            fix="set PLACELINK_POLICIES=/path/policy.yaml",
        )
    return create_app(
        url,
        paths,
        schemas,
        auth=authority_from_environment(os.environ),
        trusted_dpo_keys=[k for k in trusted if k],
        allow_unsigned_policies_unsafe=unsafe,
        dask_scheduler=os.environ.get("PLACELINK_DASK_SCHEDULER", ""),
        audit_log_path=os.environ.get("PLACELINK_AUDIT_LOG", default_log_path(url)),
        service_key=service_key_from_environment(),
        metrics_token_sha256=[
            t for t in os.environ.get("PLACELINK_METRICS_TOKEN_SHA256", "").split(",") if t
        ],
        migrate_on_start=os.environ.get("PLACELINK_MIGRATE_ON_START", "1") != "0",
    )
