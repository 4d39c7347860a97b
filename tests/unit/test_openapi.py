"""The OpenAPI document names every route of the API and nothing else, with the problem shape
the service really sends."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from gateway.schema import default_schema_path
from linkage.app import create_app, problem
from linkage.openapi import openapi_document

NOT_API = ("static", "dashboard.")  # the dashboard's page and assets are not the API


@pytest.fixture
def app(tmp_path: Path) -> Flask:
    return create_app(
        f"sqlite:///{tmp_path / 'db.sqlite'}", [], [str(default_schema_path())],
        allow_unsigned_policies_unsafe=True,
    )  # fmt: skip


def _routes(app: Flask) -> set[tuple[str, str]]:
    found = set()
    for rule in app.url_map.iter_rules():
        if rule.endpoint.startswith(NOT_API):
            continue
        path = re.sub(r"<(?:[^:>]+:)?([^>]+)>", r"{\1}", rule.rule)
        found |= {(path, m.lower()) for m in rule.methods or () if m not in ("HEAD", "OPTIONS")}
    return found


def test_the_document_and_the_routes_agree(app: Flask) -> None:
    documented = {
        (path, method) for path, item in openapi_document()["paths"].items() for method in item
    }
    assert documented == _routes(app)


def test_it_is_served_without_a_token(app: Flask) -> None:
    client: FlaskClient = app.test_client()
    answer = client.get("/openapi.json")
    assert answer.status_code == 200
    assert answer.json is not None and answer.json["openapi"] == "3.1.0"


def test_the_problem_schema_is_the_shape_the_service_sends(app: Flask) -> None:
    with app.test_request_context():
        sent = problem(422, "invalid-input", "a title", "a fix").json
    schema = openapi_document()["components"]["schemas"]["Problem"]
    assert sent is not None and set(sent) == set(schema["properties"]) == set(schema["required"])


def test_every_secured_operation_names_a_declared_scheme() -> None:
    document = openapi_document()
    schemes = set(document["components"]["securitySchemes"])
    for item in document["paths"].values():
        for operation in item.values():
            for requirement in operation.get("security", []):
                assert set(requirement) <= schemes
