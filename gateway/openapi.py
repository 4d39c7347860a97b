"""The gateway node API's OpenAPI 3.1 document, served at ``GET /openapi.json``.

Written by hand next to the routes (gateway/app.py); a test fails when a route is missing here
or the other way round. It describes shapes, never data: no example carries an identifier.
"""

from __future__ import annotations

from typing import Any

from policies.openapi import (
    BEARER,
    json_content,
    openapi_frame,
    operation,
    problem_schema,
    query_parameter,
    text_response,
)

_ERRORS = {
    "401": "no bearer token, or one the node does not know",
    "403": "the token may not do this, or the policy forbids it",
    "422": "malformed input; the detail names the field and the fix",
}


def _operation(
    summary: str,
    *,
    ok: str = "200",
    secured: str | None = "staff",
    parameters: list[dict[str, Any]] | None = None,
    errors: dict[str, str] | None = None,
) -> dict[str, Any]:
    """A node operation: a staff or operator token (then 401/403/422), or public."""
    return operation(
        summary,
        ok=ok,
        security=[{secured: []}] if secured else None,
        errors={**(_ERRORS if secured else {}), **(errors or {})},
        parameters=parameters,
    )


def _readiness() -> dict[str, Any]:
    """Not ready is a 503 with the same JSON body as ready (each check's outcome), not a
    problem: probes and people read the checks either way."""
    found = _operation(
        "Readiness: policy, key files, extract, state folder, linkage service", secured=None
    )
    found["responses"]["503"] = {"description": "not ready; see checks",
                                 **json_content({"type": "object"})}  # fmt: skip
    return found


def _metrics() -> dict[str, Any]:
    """Prometheus's text exposition, not JSON."""
    found = _operation("Prometheus metrics of the node's requests (text format)")
    found["responses"]["200"] = text_response("text/plain")
    return found


def _paths() -> dict[str, Any]:
    count = {"type": "integer", "minimum": 1, "maximum": 500, "default": 20}
    limit = query_parameter("limit", count, "how many of the latest publications")
    policy = query_parameter(
        "policy", {"type": "string"}, "the policy id (default: the node's policy)"
    )
    record = query_parameter("record_id", {"type": "string"}, "only this record's link")
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
    failed = {"type": "string", "description": "a failed publication's entry"}
    return openapi_frame(
        title="placelink gateway node",
        description="An agency's own gateway node: its publications, a trigger to publish, "
        "and the linkage service's links resolved to the agency's record IDs, for the agency's "
        "staff only. Errors are RFC 9457 problem details.",
        paths=_paths(),
        security_schemes={"staff": BEARER, "operator": BEARER},
        problem=problem_schema(publication_id=failed),
    )
