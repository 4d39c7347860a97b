"""The audit log at the linkage service's HTTP boundary: the hooks and two endpoints.

:func:`install_audit` opens the service's log (:class:`linkage.audit_trail.ServiceAudit`),
makes it the service's decision recorder and a ``Store.on_query`` hook, and records every
upload, link run and revocation as its answer leaves (so refused ones are recorded too, with
their problem type). An accepted upload's answer carries ``audit_checkpoint``: the service's
signed checkpoint just after recording it, which the gateway keeps.

``GET /v1/audit/checkpoints`` lists the signed checkpoints; ``GET /v1/audit/entries`` exports
the whole log as JSON Lines for a DPO to verify offline (``placelink audit verify``).
"""

from __future__ import annotations

import json
from typing import Any

from flask import Blueprint, Flask, Response, current_app, g, jsonify, request

from keys.errors import ConfigError
from keys.signing import SigningKey
from linkage.audit_trail import ServiceAudit, lenient_manifest
from linkage.auth_routes import require_caller, require_scope
from linkage.service import LinkageService

audit_api = Blueprint("audit", __name__)


def _audit() -> ServiceAudit:
    audit: ServiceAudit = current_app.extensions["placelink-audit"]
    return audit


@audit_api.get("/v1/audit/checkpoints")
def get_checkpoints() -> Response:
    """The service's signed checkpoints, oldest first (any registered client: gateways and
    analysts; checkpoints hold hashes, never data)."""
    require_caller()
    log = _audit().log
    if log.signer is None:
        raise ConfigError("the service has no audit key", fix="set PLACELINK_SERVICE_KEY")
    checkpoints = [c.to_json() for c in log.checkpoints()]
    return jsonify({"signer": log.signer.fingerprint, "checkpoints": checkpoints})


@audit_api.get("/v1/audit/entries")
def get_entries() -> Response:
    """The whole log as JSON Lines (scope ``admin``): nothing in it identifies anyone."""
    require_scope("admin")
    body = "".join(
        line if line.endswith("\n") else line + "\n" for line in _audit().log.backend.lines()
    )
    return Response(body, mimetype="application/x-ndjson")


def _problem(response: Response) -> str | None:
    if response.status_code < 400:
        return None
    body = response.get_json(silent=True)
    kind = body.get("type") if isinstance(body, dict) else None
    return str(kind).rsplit("/", 1)[-1][:60] if kind else "error"


def _record(response: Response) -> Response:
    """after_request: one entry per upload, link run and revocation, whatever its answer."""
    endpoint, status = request.endpoint, response.status_code
    if endpoint in _UPLOADS and _is_outcome(endpoint, response):
        manifest, size = g.get("placelink_upload") or (
            lenient_manifest(request.headers.get("Placelink-Manifest")),
            request.content_length,
        )  # a commit names its upload's manifest and length (linkage/upload_routes.py)
        made = _audit().submission(
            status=status, problem=_problem(response), manifest=manifest, size=size
        )
        if made is not None:
            _add_to_body(response, {"audit_checkpoint": made.to_json()})
    elif endpoint == "api.post_link_run":
        summary = response.get_json(silent=True) if status == 201 else None
        policy_id = str((request.view_args or {}).get("policy_id", ""))
        _audit().link_run(
            policy_id,
            status=status,
            problem=_problem(response),
            summary=summary if isinstance(summary, dict) else {},
        )
    elif endpoint == "api.post_revocation":
        body = request.get_json(silent=True)
        node_key = body.get("node_key") if isinstance(body, dict) else None
        _audit().revocation(node_key=node_key, status=status)
    return response


_UPLOADS = ("api.post_batch", "uploads_api.post_upload", "uploads_api.post_commit")


def _is_outcome(endpoint: str, response: Response) -> bool:
    """An upload's outcome: every answer of a one-request upload or a commit; of an opening,
    a refusal or "already stored" (an upload opened or resumed has no outcome yet)."""
    if endpoint != "uploads_api.post_upload" or response.status_code >= 400:
        return True
    body = response.get_json(silent=True)
    return isinstance(body, dict) and body.get("already_stored") is True


def _add_to_body(response: Response, extra: dict[str, Any]) -> None:
    body = response.get_json(silent=True)
    if isinstance(body, dict):
        response.set_data(json.dumps({**body, **extra}))


def install_audit(
    app: Flask, service: LinkageService, *, log_path: str, key: SigningKey | None
) -> ServiceAudit:
    """Open the log and hook it in (see the module docstring)."""
    audit = ServiceAudit.open(log_path, key=key, policies=service.policies)
    if key is None:
        app.logger.warning("no PLACELINK_SERVICE_KEY: the audit log's checkpoints are NOT signed")
    service.decisions = audit
    service.store.on_query.append(audit.query)
    app.extensions["placelink-audit"] = audit
    app.after_request(_record)
    app.register_blueprint(audit_api)
    return audit
