"""The linkage service's OpenAPI 3.1 document, served at ``GET /openapi.json``.

Written by hand, next to the routes it describes; a test fails when a route of the API is
missing here (or the other way round), so the document cannot drift. It describes shapes, never
data: no example carries an identifier.
"""

from __future__ import annotations

from typing import Any

PROBLEM = {"$ref": "#/components/schemas/Problem"}
_ERRORS = {
    "401": "no valid access token (WWW-Authenticate), or a bad node signature",
    "403": "the token lacks the scope, policy or party, or the policy forbids it",
    "409": "a replayed batch",
    "422": "malformed input; the detail names the field and the fix",
    "503": "the store is unavailable; nothing was changed",
}
POLICY_ID = {"name": "policy_id", "in": "path", "required": True, "schema": {"type": "string"}}


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"content": {"application/json": {"schema": schema}}}


def _operation(
    summary: str,
    *,
    ok: str = "200",
    secured: str | None = "query:hotspots",
    body: dict[str, Any] | None = None,
    parameters: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    responses: dict[str, Any] = {ok: {"description": "done", **_json({"type": "object"})}}
    for status, why in _ERRORS.items():
        responses[status] = {"description": why, "content": {"application/problem+json": {
            "schema": PROBLEM}}}  # fmt: skip
    operation: dict[str, Any] = {"summary": summary, "responses": responses}
    if secured == "metrics":  # a scraper's static bearer token, not an OAuth scope
        operation["security"] = [{"metrics": []}]
    elif secured:
        operation["security"] = [{"oauth2": [secured]}]
    if body is not None:
        operation["requestBody"] = {"required": False, **body}
    if parameters:
        operation["parameters"] = parameters
    return operation


def _upload() -> dict[str, Any]:
    headers = [
        {"name": name, "in": "header", "required": True, "schema": {"type": "string"},
         "description": text}
        for name, text in (
            ("Placelink-Manifest", "base64url of the canonical JSON manifest (docs/formats.md)"),
            ("Placelink-Signature", "base64url Ed25519 signature of the manifest by the node key"),
        )
    ]  # fmt: skip
    body = {"content": {"application/vnd.placelink.clks": {"schema": {
        "type": "string", "format": "binary"}}}}  # fmt: skip
    operation = _operation(
        "Submit a signed batch of encodings",
        ok="201",
        secured="submit",
        body=body,
        parameters=headers,
    )
    operation["requestBody"]["required"] = True
    operation["responses"]["200"] = {"description": "the same batch was already stored"}
    return operation


def _audit_entries() -> dict[str, Any]:
    """The export is JSON Lines (one entry a line), not one JSON document."""
    operation = _operation("The audit log as JSON Lines (docs/dpo.md)", secured="admin")
    operation["responses"]["200"] = {"description": "done", "content": {
        "application/x-ndjson": {"schema": {"type": "string"}}}}  # fmt: skip
    return operation


def _uploads() -> dict[str, Any]:
    """The resumable upload (docs/formats.md): open, send chunks, ask the offset, commit."""
    batch = {"name": "batch_id", "in": "path", "required": True, "schema": {"type": "string"}}

    def header(name: str, text: str) -> dict[str, Any]:
        return {"name": name, "in": "header", "required": True, "schema": {"type": "string"},
                "description": text}  # fmt: skip

    signature = header("Placelink-Signature", "the upload's signature, as sent when opened")
    opening = [
        header("Placelink-Manifest", "base64url of the canonical JSON manifest"),
        signature,
        header("Upload-Length", "the size of the whole .clks body in bytes"),
    ]
    chunk = {"content": {"application/vnd.placelink.clks": {"schema": {
        "type": "string", "format": "binary"}}}}  # fmt: skip
    offset = header("Upload-Offset", "where the chunk starts")
    patch = _operation("Append a chunk at Upload-Offset", secured="submit", body=chunk,
                       parameters=[batch, signature, offset])  # fmt: skip
    patch["requestBody"]["required"] = True
    patch["responses"]["409"] = {"description": "the chunk does not start at the upload's offset"}
    opened = _operation("Open (or find) the upload of a signed batch", ok="201", secured="submit",
                        parameters=opening)  # fmt: skip
    opened["responses"]["200"] = {"description": "resumed, or the batch is already stored"}
    commit = _operation("Check and store the uploaded batch", ok="201", secured="submit",
                        parameters=[batch, signature])  # fmt: skip
    commit["responses"]["200"] = {"description": "the same batch was already stored"}
    return {
        "/v1/uploads": {"post": opened},
        "/v1/uploads/{batch_id}": {
            "get": _operation("The offset received so far", secured="submit",
                              parameters=[batch, signature]),
            "patch": patch,
        },
        "/v1/uploads/{batch_id}/commit": {"post": commit},
    }  # fmt: skip


def _token() -> dict[str, Any]:
    form = {
        "type": "object",
        "required": ["grant_type"],
        "properties": {
            "grant_type": {"const": "client_credentials"},
            "scope": {"type": "string"},
            "client_id": {"type": "string"},
            "client_secret": {"type": "string"},
            "client_assertion_type": {"type": "string"},
            "client_assertion": {"type": "string"},
        },
    }
    body = {"content": {"application/x-www-form-urlencoded": {"schema": form}}}
    operation = _operation("OAuth 2.0 token endpoint (client credentials)", secured=None,
                           body=body)  # fmt: skip
    operation["requestBody"]["required"] = True
    for status in ("400", "401"):
        operation["responses"][status] = {"description": "RFC 6749 error", **_json(
            {"type": "object", "required": ["error"]})}  # fmt: skip
    return operation


def _paths() -> dict[str, Any]:
    source = {"name": "source", "in": "path", "required": True, "schema": {"type": "string"}}
    link_body = _json({"type": "object", "properties": {
        "epoch": {"type": "integer"}, "incremental": {"type": "boolean"}}})  # fmt: skip
    return {
        "/healthz": {"get": _operation("Liveness", secured=None)},
        "/readyz": {"get": _operation("Readiness: database, migrations, policies", secured=None)},
        "/metrics": {"get": _operation("Prometheus metrics (text format)", secured="metrics")},
        "/openapi.json": {"get": _operation("This document", secured=None)},
        "/v1/batches": {"post": _upload()},
        **_uploads(),
        "/v1/oauth/token": {"post": _token()},
        "/v1/policies": {"get": _operation("Policies this service serves")},
        "/v1/policies/{policy_id}/link-runs": {"post": _operation(
            "Link one key epoch into entities", ok="201", body=link_body, secured="admin",
            parameters=[POLICY_ID])},
        "/v1/policies/{policy_id}/links/{source}": {"get": _operation(
            "One provider's pseudonyms and entities (the provider's own client only)",
            secured="links:read", parameters=[POLICY_ID, source])},
        "/v1/policies/{policy_id}/hotspots": {"post": _operation(
            "A disclosure-controlled hot-spot answer (JSON, or CSV with ?format=csv)",
            body=_json({"type": "object"}), parameters=[POLICY_ID])},
        "/v1/policies/{policy_id}/hotspots/options": {"get": _operation(
            "What a hot-spot query may name under the policy", parameters=[POLICY_ID])},
        "/v1/policies/{policy_id}/privacy-budget": {"get": _operation(
            "The caller's privacy budget under the policy", parameters=[POLICY_ID])},
        "/v1/revocations": {
            "get": _operation("Revoked node keys", secured="admin"),
            "post": _operation("Revoke a node key", ok="201", secured="admin", body=_json(
                {"type": "object", "required": ["node_key"],
                 "properties": {"node_key": {"type": "string"}}})),
        },
        "/v1/audit/checkpoints": {"get": _operation("The audit log's signed checkpoints")},
        "/v1/audit/entries": {"get": _audit_entries()},
    }  # fmt: skip


def openapi_document() -> dict[str, Any]:
    """The whole document."""
    bearer = {"type": "http", "scheme": "bearer"}
    oauth2 = {
        "type": "oauth2",
        "description": "client credentials: client secret or private_key_jwt (Ed25519)",
        "flows": {"clientCredentials": {"tokenUrl": "/v1/oauth/token", "scopes": {
            "submit": "upload batches as the token's party",
            "links:read": "read the token's own party's entity links",
            "query:hotspots": "ask hot-spot queries as the token's party",
            "admin": "link runs and key revocations"}}},
    }  # fmt: skip
    problem = {
        "type": "object",
        "required": ["type", "title", "status", "detail"],
        "properties": {
            "type": {"type": "string", "format": "uri"},
            "title": {"type": "string"},
            "status": {"type": "integer"},
            "detail": {"type": "string", "description": "the fix"},
        },
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "placelink linkage service",
            "version": "1",
            "description": "Signed uploads of keyed encodings, link runs, and hot-spot answers "
            "under disclosure control. Errors are RFC 9457 problem details.",
        },
        "paths": _paths(),
        "components": {
            "schemas": {"Problem": problem},
            "securitySchemes": {"oauth2": oauth2, "metrics": bearer},
        },
    }
