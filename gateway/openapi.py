"""The gateway node API's OpenAPI 3.1 document, served at ``GET /openapi.json``.

Written by hand next to the routes (gateway/app.py); a test fails when a route is missing here
or the other way round. It describes shapes, never data: no example carries an identifier.
"""

from __future__ import annotations

from typing import Any

PROBLEM = {"$ref": "#/components/schemas/Problem"}
_ERRORS = {
    "401": "no bearer token, or one the node does not know",
    "403": "the token may not do this, or the policy forbids it",
    "422": "malformed input; the detail names the field and the fix",
}


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"content": {"application/json": {"schema": schema}}}


def _problem(why: str) -> dict[str, Any]:
    return {"description": why, "content": {"application/problem+json": {"schema": PROBLEM}}}


def _operation(
    summary: str,
    *,
    ok: str = "200",
    secured: str | None = "staff",
    parameters: list[dict[str, Any]] | None = None,
    errors: dict[str, str] | None = None,
) -> dict[str, Any]:
    responses: dict[str, Any] = {ok: {"description": "done", **_json({"type": "object"})}}
    if secured:
        responses |= {status: _problem(why) for status, why in _ERRORS.items()}
    responses |= {status: _problem(why) for status, why in (errors or {}).items()}
    operation: dict[str, Any] = {"summary": summary, "responses": responses}
    if secured:
        operation["security"] = [{secured: []}]
    if parameters:
        operation["parameters"] = parameters
    return operation


def _query(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": schema,
            "description": description}  # fmt: skip


def _readiness() -> dict[str, Any]:
    """Not ready is a 503 with the same JSON body as ready (each check's outcome), not a
    problem: probes and people read the checks either way."""
    operation = _operation(
        "Readiness: policy, key files, extract, state folder, linkage service", secured=None
    )
    operation["responses"]["503"] = {"description": "not ready; see checks",
                                     **_json({"type": "object"})}  # fmt: skip
    return operation


def _metrics() -> dict[str, Any]:
    """Prometheus's text exposition, not JSON."""
    operation = _operation("Prometheus metrics of the node's requests (text format)")
    operation["responses"]["200"] = {"description": "done", "content": {
        "text/plain": {"schema": {"type": "string"}}}}  # fmt: skip
    return operation


def _paths() -> dict[str, Any]:
    limit = _query("limit", {"type": "integer", "minimum": 1, "maximum": 500, "default": 20},
                   "how many of the latest publications")  # fmt: skip
    policy = _query("policy", {"type": "string"}, "the policy id (default: the node's policy)")
    record = _query("record_id", {"type": "string"}, "only this record's link")
    return {
        "/healthz": {"get": _operation("Liveness", secured=None)},
        "/readyz": {"get": _readiness()},
        "/openapi.json": {"get": _operation("This document", secured=None)},
        "/metrics": {"get": _metrics()},
        "/v1/publications": {
            "get": _operation("The node's latest publications, newest first", parameters=[limit]),
            "post": _operation("Publish now (or finish the pending publication)", ok="201",
                secured="operator", errors={
                    "409": "another publication is running",
                    "502": "the publication failed; it is in the log (publication_id)"}),
        },
        "/v1/links": {"get": _operation(
            "The service's links resolved to this agency's record IDs",
            parameters=[policy, record],
            errors={"502": "the linkage service is unreachable or refused"})},
    }  # fmt: skip


def openapi_document() -> dict[str, Any]:
    """The whole document."""
    bearer = {"type": "http", "scheme": "bearer"}
    problem = {
        "type": "object",
        "required": ["type", "title", "status", "detail"],
        "properties": {
            "type": {"type": "string", "format": "uri"},
            "title": {"type": "string"},
            "status": {"type": "integer"},
            "detail": {"type": "string", "description": "the fix"},
            "publication_id": {"type": "string", "description": "a failed publication's entry"},
        },
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "placelink gateway node",
            "version": "1",
            "description": "An agency's own gateway node: its publications, a trigger to "
            "publish, and the linkage service's links resolved to the agency's record IDs, "
            "for the agency's staff only. Errors are RFC 9457 problem details.",
        },
        "paths": _paths(),
        "components": {
            "schemas": {"Problem": problem},
            "securitySchemes": {"staff": bearer, "operator": bearer},
        },
    }
