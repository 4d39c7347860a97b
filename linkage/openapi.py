"""The linkage service's OpenAPI 3.1 document, served at ``GET /openapi.json``.

Written by hand, next to the routes it describes; a test fails when a route of the API is
missing here (or the other way round), so the document cannot drift. It describes shapes, never
data: no example carries an identifier.
"""

from __future__ import annotations

from typing import Any

from policies.openapi import (
    BEARER,
    header_parameter,
    json_content,
    openapi_frame,
    operation,
    path_parameter,
    text_response,
)

_ERRORS = {
    "401": "no valid access token (WWW-Authenticate), or a bad node signature",
    "403": "the token lacks the scope, policy or party, or the policy forbids it",
    "409": "a replayed batch",
    "422": "malformed input; the detail names the field and the fix",
    "503": "the store is unavailable; nothing was changed",
}
POLICY_ID = path_parameter("policy_id")
CLKS_BODY = {"content": {"application/vnd.placelink.clks": {"schema": {
    "type": "string", "format": "binary"}}}}  # fmt: skip


def _operation(
    summary: str,
    *,
    ok: str = "200",
    secured: str | None = "query:hotspots",
    body: dict[str, Any] | None = None,
    parameters: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """A service operation: an OAuth scope (``secured``), the metrics token, or public."""
    security: list[dict[str, list[str]]] | None
    if secured == "metrics":  # a scraper's static bearer token, not an OAuth scope
        security = [{"metrics": []}]
    else:
        security = [{"oauth2": [secured]}] if secured else None
    return operation(
        summary, ok=ok, security=security, errors=_ERRORS, body=body, parameters=parameters
    )


def _upload() -> dict[str, Any]:
    headers = [
        header_parameter("Placelink-Manifest",
                         "base64url of the canonical JSON manifest (docs/formats.md)"),
        header_parameter("Placelink-Signature",
                         "base64url Ed25519 signature of the manifest by the node key"),
    ]  # fmt: skip
    found = _operation(
        "Submit a signed batch of encodings",
        ok="201",
        secured="submit",
        body=CLKS_BODY,
        parameters=headers,
    )
    found["requestBody"]["required"] = True
    found["responses"]["200"] = {"description": "the same batch was already stored"}
    return found


def _audit_entries() -> dict[str, Any]:
    """The export is JSON Lines (one entry a line), not one JSON document."""
    found = _operation("The audit log as JSON Lines (docs/dpo.md)", secured="admin")
    found["responses"]["200"] = text_response("application/x-ndjson")
    return found


def _uploads() -> dict[str, Any]:
    """The resumable upload (docs/formats.md): open, send chunks, ask the offset, commit."""
    batch, header = path_parameter("batch_id"), header_parameter
    signature = header("Placelink-Signature", "the upload's signature, as sent when opened")
    opening = [
        header("Placelink-Manifest", "base64url of the canonical JSON manifest"),
        signature,
        header("Upload-Length", "the size of the whole .clks body in bytes"),
    ]
    offset = header("Upload-Offset", "where the chunk starts")
    patch = _operation("Append a chunk at Upload-Offset", secured="submit", body=CLKS_BODY,
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
    found = _operation("OAuth 2.0 token endpoint (client credentials)", secured=None,
                       body=body)  # fmt: skip
    found["requestBody"]["required"] = True
    for status in ("400", "401"):
        found["responses"][status] = {"description": "RFC 6749 error", **json_content(
            {"type": "object", "required": ["error"]})}  # fmt: skip
    return found


def _paths() -> dict[str, Any]:
    source = path_parameter("source")
    link_body = json_content({"type": "object", "properties": {
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
            body=json_content({"type": "object"}), parameters=[POLICY_ID])},
        "/v1/policies/{policy_id}/hotspots/options": {"get": _operation(
            "What a hot-spot query may name under the policy", parameters=[POLICY_ID])},
        "/v1/policies/{policy_id}/privacy-budget": {"get": _operation(
            "The caller's privacy budget under the policy", parameters=[POLICY_ID])},
        "/v1/revocations": {
            "get": _operation("Revoked node keys", secured="admin"),
            "post": _operation("Revoke a node key", ok="201", secured="admin", body=json_content(
                {"type": "object", "required": ["node_key"],
                 "properties": {"node_key": {"type": "string"}}})),
        },
        "/v1/audit/checkpoints": {"get": _operation("The audit log's signed checkpoints")},
        "/v1/audit/entries": {"get": _audit_entries()},
    }  # fmt: skip


def openapi_document() -> dict[str, Any]:
    """The whole document."""
    oauth2 = {
        "type": "oauth2",
        "description": "client credentials: client secret or private_key_jwt (Ed25519)",
        "flows": {"clientCredentials": {"tokenUrl": "/v1/oauth/token", "scopes": {
            "submit": "upload batches as the token's party",
            "links:read": "read the token's own party's entity links",
            "query:hotspots": "ask hot-spot queries as the token's party",
            "admin": "link runs and key revocations"}}},
    }  # fmt: skip
    return openapi_frame(
        title="placelink linkage service",
        description="Signed uploads of keyed encodings, link runs, and hot-spot answers "
        "under disclosure control. Errors are RFC 9457 problem details.",
        paths=_paths(),
        security_schemes={"oauth2": oauth2, "metrics": BEARER},
    )
