"""The gateway node's own API through Flask's test client: each endpoint, who may call it
(an allow/deny matrix), the problem+json shape, the OpenAPI document against the routes, and
a node that fails closed at start-up. The linkage service here is a closed port; the
integration test (tests/integration/test_node_api.py) runs against the real one."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.app import create_node_app, problem
from gateway.node_settings import service_client, settings_from_environment
from gateway.openapi import openapi_document
from gateway.publications import PublicationLog, publication_lock
from gateway.staff_access import StaffTokens, authorise
from keys.errors import AccessError, ConfigError, KeyMaterialError, PolicyError
from tests.node_world import NodeWorld, build_node_world, sha256

NOBODY, STAFF, OPERATOR, STRANGER = "nobody", "staff", "operator", "stranger"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> NodeWorld:
    return build_node_world(tmp_path_factory.mktemp("node"), people=120)


@pytest.fixture(scope="module")
def app(world: NodeWorld) -> Flask:
    return create_node_app(settings_from_environment(world.env))


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def _headers(world: NodeWorld, who: str) -> dict[str, str]:
    token = {STAFF: world.staff_token, OPERATOR: world.operator_token, STRANGER: "not-a-token"}
    return {"Authorization": f"Bearer {token[who]}"} if who in token else {}


def _assert_problem(answer: object, status: int, slug: str) -> dict[str, object]:
    from werkzeug.test import TestResponse

    assert isinstance(answer, TestResponse)
    assert answer.status_code == status
    assert answer.headers["Content-Type"] == "application/problem+json"
    body = answer.get_json(force=True)
    assert body["type"] == f"https://placelink.example/problems/{slug}"
    assert body["status"] == status and body["title"] and isinstance(body["detail"], str)
    return dict(body)


@pytest.mark.parametrize(
    ("method", "path", "who", "status"),
    [
        ("get", "/v1/publications", NOBODY, 401),
        ("get", "/v1/publications", STRANGER, 401),
        ("get", "/v1/publications", STAFF, 200),
        ("get", "/v1/publications", OPERATOR, 200),
        ("post", "/v1/publications", NOBODY, 401),
        ("post", "/v1/publications", STRANGER, 401),
        ("post", "/v1/publications", STAFF, 403),
        ("get", "/v1/links", NOBODY, 401),
        ("get", "/v1/links", STRANGER, 401),
        ("get", "/v1/links", STAFF, 502),  # allowed; the service is a closed port here
        ("get", "/metrics", NOBODY, 401),
        ("get", "/metrics", STAFF, 200),
        ("get", "/metrics", OPERATOR, 200),
        ("get", "/healthz", NOBODY, 200),
        ("get", "/openapi.json", NOBODY, 200),
    ],
)
def test_who_may_call_what(
    client: FlaskClient, world: NodeWorld, method: str, path: str, who: str, status: int
) -> None:
    answer = getattr(client, method)(path, headers=_headers(world, who))
    assert answer.status_code == status
    if status == 401:
        _assert_problem(answer, 401, "unauthorized")
        assert answer.headers["WWW-Authenticate"].startswith("Bearer")
    if status == 403:
        _assert_problem(answer, 403, "forbidden")


def test_metrics_count_requests_by_route_and_logs_hold_no_token(
    client: FlaskClient, world: NodeWorld, capsys: pytest.CaptureFixture[str]
) -> None:
    for _ in range(3):
        client.get("/v1/publications?limit=1", headers=_headers(world, STAFF))
    text = client.get("/metrics", headers=_headers(world, STAFF)).get_data(as_text=True)
    counted = [
        line
        for line in text.splitlines()
        if line.startswith("placelink_http_requests_total{")
        and 'service="gateway"' in line
        and 'method="GET"' in line
        and 'route="/v1/publications"' in line
        and 'status="200"' in line
    ]
    assert counted and float(counted[0].rsplit(" ", 1)[1]) >= 3
    logged = capsys.readouterr().err
    assert '"route":"/v1/publications"' in logged  # the log sees the requests...
    assert world.staff_token not in logged and "limit=1" not in logged  # ...and no values


def test_a_token_must_come_as_a_bearer(client: FlaskClient, world: NodeWorld) -> None:
    answer = client.get("/v1/publications", headers={"Authorization": world.staff_token})
    _assert_problem(answer, 401, "unauthorized")


def test_a_failed_publication_answers_502_and_is_in_the_log(
    client: FlaskClient, world: NodeWorld
) -> None:
    answer = client.post("/v1/publications", headers=_headers(world, OPERATOR))
    body = _assert_problem(answer, 502, "publication-failed")
    assert "cannot reach the linkage service" in str(body["title"])
    listed = client.get("/v1/publications?limit=1", headers=_headers(world, STAFF)).get_json()
    entry = listed["publications"][0]
    assert listed["source"] == "police" and entry["publication_id"] == body["publication_id"]
    assert entry["outcome"] == "failed" and entry["trigger"] == "api"
    assert entry["requested_by"].startswith("staff:")
    assert world.operator_token not in str(listed)


def test_a_publication_while_one_runs_is_refused(client: FlaskClient, world: NodeWorld) -> None:
    before = len(PublicationLog(world.state_dir).recent(500))
    with publication_lock(world.state_dir):
        answer = client.post("/v1/publications", headers=_headers(world, OPERATOR))
    _assert_problem(answer, 409, "publication-in-progress")
    assert len(PublicationLog(world.state_dir).recent(500)) == before


@pytest.mark.parametrize("limit", ["0", "501", "ten", "-1"])
def test_a_bad_limit_names_the_fix(client: FlaskClient, world: NodeWorld, limit: str) -> None:
    answer = client.get(f"/v1/publications?limit={limit}", headers=_headers(world, STAFF))
    assert "limit" in str(_assert_problem(answer, 422, "invalid-input")["detail"])


def test_links_of_another_policy_are_refused(client: FlaskClient, world: NodeWorld) -> None:
    answer = client.get("/v1/links?policy=another", headers=_headers(world, STAFF))
    body = _assert_problem(answer, 422, "invalid-input")
    assert "seabrook-task-force" in str(body["detail"])


def test_the_node_is_an_oauth_client_of_the_service(world: NodeWorld) -> None:
    """The node gets its tokens with private_key_jwt and its node key, as ``<source>-gateway``
    unless PLACELINK_NODE_CLIENT_ID names another client."""
    settings = settings_from_environment(world.env)
    assert settings.client_id == f"{world.source}-gateway"
    named = settings_from_environment({**world.env, "PLACELINK_NODE_CLIENT_ID": "node-7"})
    client = service_client(named, world.node_keys[world.source])
    assert client.client_id == "node-7" and client.token_url.endswith("/v1/oauth/token")


def test_links_when_the_service_is_down(client: FlaskClient, world: NodeWorld) -> None:
    answer = client.get("/v1/links", headers=_headers(world, STAFF))
    _assert_problem(answer, 502, "linkage-service")


def test_readiness_names_the_failing_check(client: FlaskClient) -> None:
    answer = client.get("/readyz")
    assert answer.status_code == 503
    body = answer.get_json()
    assert body["status"] == "not-ready"
    assert body["checks"].pop("linkage_service") == "failed"
    assert set(body["checks"].values()) == {"ok"}


def test_readiness_fails_when_the_policy_has_expired(world: NodeWorld) -> None:
    import datetime as dt

    days = iter([dt.date.today(), dt.date.today() + dt.timedelta(days=3650)])
    app = create_node_app(settings_from_environment(world.env), today=lambda: next(days))
    body = app.test_client().get("/readyz").get_json()
    assert body["checks"]["policy"] == "failed"


def test_unknown_paths_and_methods_are_problems(client: FlaskClient) -> None:
    _assert_problem(client.get("/v1/nothing"), 404, "not-found")
    _assert_problem(client.delete("/v1/publications"), 405, "method-not-allowed")


def _routes(app: Flask) -> set[tuple[str, str]]:
    found = set()
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static":
            continue
        path = re.sub(r"<(?:[^:>]+:)?([^>]+)>", r"{\1}", rule.rule)
        found |= {(path, m.lower()) for m in rule.methods or () if m not in ("HEAD", "OPTIONS")}
    return found


def test_the_document_and_the_routes_agree(app: Flask, client: FlaskClient) -> None:
    document = openapi_document()
    documented = {(path, method) for path, item in document["paths"].items() for method in item}
    assert documented == _routes(app)
    assert client.get("/openapi.json").get_json() == document
    schemes = set(document["components"]["securitySchemes"])
    for item in document["paths"].values():
        for operation in item.values():
            for requirement in operation.get("security", []):
                assert set(requirement) <= schemes


def test_the_problem_schema_is_the_shape_the_node_sends(app: Flask) -> None:
    with app.test_request_context():
        plain = problem(422, "invalid-input", "a title", "a fix").get_json()
        failed = problem(502, "publication-failed", "t", "f", publication_id="p").get_json()
    schema = openapi_document()["components"]["schemas"]["Problem"]
    assert set(plain) == set(schema["required"])
    assert set(schema["required"]) <= set(failed) <= set(schema["properties"])


def test_the_node_does_not_start_on_a_wrong_passphrase(world: NodeWorld) -> None:
    env = world.env | {"PLACELINK_NODE_PASSPHRASE": "a wrong passphrase"}
    with pytest.raises(KeyMaterialError):
        create_node_app(settings_from_environment(env))


def test_the_node_does_not_start_without_trusted_dpo_keys(world: NodeWorld) -> None:
    env = world.env | {"PLACELINK_TRUSTED_DPO_KEYS": ""}
    with pytest.raises(ConfigError, match="trusted DPO"):
        create_node_app(settings_from_environment(env))


def test_the_node_does_not_start_under_a_policy_its_dpos_did_not_sign(world: NodeWorld) -> None:
    from keys import SigningKey

    env = world.env | {"PLACELINK_TRUSTED_DPO_KEYS": SigningKey.generate().fingerprint}
    with pytest.raises(PolicyError):
        create_node_app(settings_from_environment(env))


def test_missing_settings_are_named_with_their_fix() -> None:
    with pytest.raises(ConfigError) as caught:
        settings_from_environment({"PLACELINK_NODE_SOURCE": "police"})
    assert "PLACELINK_NODE_INPUT" in caught.value.message
    assert "PLACELINK_NODE_SOURCE" not in caught.value.message
    assert "set PLACELINK_NODE_POLICY to the signed sharing policy YAML" in caught.value.fix


def test_a_passphrase_may_come_from_a_file(world: NodeWorld, tmp_path: Path) -> None:
    from tests.node_world import NODE_PASSPHRASE

    (tmp_path / "pass").write_text(NODE_PASSPHRASE + "\n")
    env = {k: v for k, v in world.env.items() if k != "PLACELINK_NODE_PASSPHRASE"}
    settings = settings_from_environment(env | {"PLACELINK_NODE_PASSPHRASE_FILE": str(
        tmp_path / "pass")})  # fmt: skip
    assert settings.node_passphrase == NODE_PASSPHRASE
    assert NODE_PASSPHRASE not in repr(settings)


def test_a_token_configured_in_place_of_its_digest_is_refused() -> None:
    with pytest.raises(ConfigError, match="PLACELINK_NODE_STAFF_TOKEN_SHA256"):
        StaffTokens(staff_sha256=frozenset({"my-secret-token"}))


def test_serve_names_a_missing_setting_before_starting_anything(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from placelink.cli import main

    for name in list(os.environ):
        if name.startswith("PLACELINK_NODE_"):
            monkeypatch.delenv(name)
    assert main(["gateway", "serve", "--bind", "127.0.0.1:0"]) == 1
    assert "PLACELINK_NODE_SOURCE" in capsys.readouterr().err


@given(header=st.text(max_size=60))
@settings(max_examples=200)
def test_no_header_but_a_configured_token_gets_in(header: str) -> None:
    tokens = StaffTokens(staff_sha256=frozenset({sha256("the staff token")}),
                         operator_sha256=frozenset({sha256("the operator token")}))  # fmt: skip
    allowed = header.startswith("Bearer ") and header.removeprefix("Bearer ").strip() in (
        "the staff token", "the operator token")  # fmt: skip
    try:
        caller = authorise(header, role="staff", tokens=tokens)
    except AccessError:
        assert not allowed
    else:
        assert allowed and caller.startswith("staff:") and "token" not in caller
