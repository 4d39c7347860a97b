"""The building blocks of both services' OpenAPI 3.1 documents (gateway/openapi.py,
linkage/openapi.py): operations with their problem responses, parameters, the RFC 9457
``Problem`` schema, the bearer security scheme and the document's frame. Each service writes
its own paths with them, by hand next to its routes; a test per service fails when the two
drift apart. Shapes only, never data: no example carries an identifier.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from policies.problems import PROBLEM_CONTENT_TYPE

OPENAPI_VERSION = "3.1.0"
PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}
BEARER = {"type": "http", "scheme": "bearer"}

Schema = dict[str, Any]


def json_content(schema: Schema) -> Schema:
    """A JSON body of ``schema`` (a response's or a request's ``content``)."""
    return {"content": {"application/json": {"schema": schema}}}


def text_response(media_type: str) -> Schema:
    """A 200 whose body is text of ``media_type`` (Prometheus text, JSON Lines), not JSON."""
    return {"description": "done", "content": {media_type: {"schema": {"type": "string"}}}}


def problem_response(why: str) -> Schema:
    """An error response: ``why`` it happens, a problem+json body."""
    return {"description": why, "content": {PROBLEM_CONTENT_TYPE: {"schema": PROBLEM_REF}}}


def operation(
    summary: str,
    *,
    ok: str = "200",
    security: list[dict[str, list[str]]] | None = None,
    errors: Mapping[str, str] | None = None,
    body: Schema | None = None,
    parameters: list[Schema] | None = None,
) -> Schema:
    """One operation: its success (a JSON object), each error status as a problem, and its
    security, optional request body and parameters."""
    responses: Schema = {ok: {"description": "done", **json_content({"type": "object"})}}
    responses |= {status: problem_response(why) for status, why in (errors or {}).items()}
    found: Schema = {"summary": summary, "responses": responses}
    if security:
        found["security"] = security
    if body is not None:
        found["requestBody"] = {"required": False, **body}
    if parameters:
        found["parameters"] = parameters
    return found


def query_parameter(name: str, schema: Schema, description: str) -> Schema:
    return {"name": name, "in": "query", "required": False, "schema": schema,
            "description": description}  # fmt: skip


def header_parameter(name: str, description: str) -> Schema:
    return {"name": name, "in": "header", "required": True, "schema": {"type": "string"},
            "description": description}  # fmt: skip


def path_parameter(name: str) -> Schema:
    return {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}


def problem_schema(**extra_properties: Schema) -> Schema:
    """The problem body both services send (:func:`policies.problems.problem_body`), with the
    extension members a service adds."""
    return {
        "type": "object",
        "required": ["type", "title", "status", "detail"],
        "properties": {
            "type": {"type": "string", "format": "uri"},
            "title": {"type": "string"},
            "status": {"type": "integer"},
            "detail": {"type": "string", "description": "the fix"},
            **extra_properties,
        },
    }


def openapi_frame(
    *,
    title: str,
    description: str,
    paths: Schema,
    security_schemes: Schema,
    problem: Schema | None = None,
) -> Schema:
    """The whole document around a service's paths."""
    return {
        "openapi": OPENAPI_VERSION,
        "info": {"title": title, "version": "1", "description": description},
        "paths": paths,
        "components": {
            "schemas": {"Problem": problem or problem_schema()},
            "securitySchemes": security_schemes,
        },
    }
