"""Every endpoint denies by default: an allow/deny matrix over every data endpoint x {no token,
expired, bad signature, wrong scope, wrong party, wrong policy, right}, with real tokens from
the real token endpoint; and a walk of the app's URL map that finds no rule, other than the
public ones, answering an unauthenticated call."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from gateway.pipeline import context_for_policy, encode_csv
from gateway.pseudonyms import PseudonymMap
from gateway.schema import default_schema, default_schema_path
from gateway.submit import Submission, prepare_submission
from keys import SigningKey, new_secret
from linkage.app import PROBLEM_BASE, create_app
from linkage.auth import TokenAuthority
from linkage.clients import parse_clients
from placelink.town import generate_town, write_canonical_csv
from policies.model import dump_policy, load_policy
from tests.oauth_clients import (
    POLICY_ID,
    Clock,
    authority,
    bearer,
    clients_document,
    flask_token,
    gateway_client_id,
)
from tests.policy_keys import enrolled_document, example_trust

PARTIES = ("police", "health")
PUBLIC = {
    "/healthz",
    "/readyz",
    "/openapi.json",
    "/v1/oauth/token",
    "/dashboard",
    "/dashboard/assets/<name>",
    "/static/<path:filename>",
}


@dataclass
class World:
    client: FlaskClient
    clock: Clock
    keys: dict[str, SigningKey]
    batches: dict[str, Submission]
    tokens: dict[str, str]

    def token(self, who: str) -> str:
        if who not in self.tokens:
            key = self.keys.get(who)
            client_id = gateway_client_id(who) if key else who
            self.tokens[who] = flask_token(self.client, client_id, key)
        return self.tokens[who]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    """A service with police and health uploaded and linked once (module scope: the matrix
    asks ~60 questions of it; each mutating cell is harmless to repeat)."""
    folder = tmp_path_factory.mktemp("matrix")
    keys = {party: SigningKey.generate() for party in PARTIES}
    today = dt.datetime.now(dt.UTC).date()
    policy_path = folder / "policy.yaml"
    dump_policy(enrolled_document(keys, today=today), policy_path)
    policy = load_policy(policy_path)
    context = context_for_policy(policy, default_schema(), epoch=0, today=today)
    town = generate_town(seed=4, people=60, areas=2)
    clock = Clock()
    app = create_app(
        f"sqlite:///{folder / 'linkage.db'}",
        [str(policy_path)],
        [str(default_schema_path())],
        auth=authority(keys, clock=clock),
        trusted_dpo_keys=sorted(example_trust().trusted_dpo_keys),
    )
    batches = {}
    for party in PARTIES:
        csv = folder / f"{party}.csv"
        write_canonical_csv(town.canonical_rows[party], csv)
        batch = encode_csv(csv, secret=new_secret(), context=context, pseudonyms=PseudonymMap())
        batches[party] = prepare_submission(
            batch.batch, source=party, policy_hash=policy.policy_hash, node_key=keys[party]
        )
    found = World(app.test_client(), clock, keys, batches, {})
    for party in PARTIES:
        sent = found.client.post(
            "/v1/batches",
            data=batches[party].body,
            headers={**batches[party].headers(), **bearer(found.token(party))},
        )
        assert sent.status_code == 201, sent.get_data(as_text=True)
    linked = found.client.post(
        f"/v1/policies/{POLICY_ID}/link-runs", headers=bearer(found.token("admin"))
    )
    assert linked.status_code == 201
    return found


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str
    right: str  # who may: a client id, or a party (its gateway)
    wrong_scope: str
    wrong_party: str | None  # None: the party plays no part here
    wrong_policy: str | None  # None: no policy in the path
    body: Callable[[World], dict[str, object]] = lambda w: {}

    def call(self, world: World, headers: dict[str, str]) -> TestResponse:
        if self.path == "/v1/batches":
            sub = world.batches["police"]
            return world.client.post(self.path, data=sub.body, headers={**sub.headers(), **headers})
        return world.client.open(
            self.path, method=self.method, headers=headers, json=self.body(world)
        )


P = f"/v1/policies/{POLICY_ID}"
ENDPOINTS = [
    Endpoint("POST", "/v1/batches", "police", "analyst", "health", "elsewhere"),
    Endpoint("GET", f"{P}/links/police", "police", "analyst", "health", "elsewhere"),
    Endpoint("POST", f"{P}/hotspots", "analyst", "admin", "police-analyst", "other-analyst"),
    Endpoint("GET", f"{P}/hotspots/options", "analyst", "police", None, "other-analyst"),
    Endpoint("GET", f"{P}/privacy-budget", "analyst", "police", None, "other-analyst"),
    Endpoint("GET", "/v1/policies", "analyst", "police", None, None),
    Endpoint("POST", f"{P}/link-runs", "admin", "analyst", None, "elsewhere"),
    Endpoint(
        "POST",
        "/v1/revocations",
        "admin",
        "analyst",
        None,
        None,
        body=lambda w: {"node_key": "ed25519:" + "ab" * 32},
    ),
    Endpoint("GET", "/v1/revocations", "admin", "analyst", None, None),
]


def _foreign_token(world: World, who: str) -> str:
    """A token with the right claims, signed by a key the service does not trust."""
    forger = TokenAuthority(
        parse_clients(clients_document(world.keys)),
        "placelink-linkage",
        signing_key=Ed25519PrivateKey.generate(),
    )
    client_id = gateway_client_id(who) if who in world.keys else who
    client = forger.clients[client_id]
    return str(forger.issue(client, client.scopes)["access_token"])


CASES = ["no-token", "expired", "bad-signature", "wrong-scope", "wrong-party", "wrong-policy",
         "right"]  # fmt: skip


def _headers(world: World, endpoint: Endpoint, case: str) -> dict[str, str]:
    if case == "no-token":
        return {}
    if case == "bad-signature":
        return bearer(_foreign_token(world, endpoint.right))
    if case in ("expired", "right"):
        return bearer(world.token(endpoint.right))
    who = {"wrong-scope": endpoint.wrong_scope, "wrong-party": endpoint.wrong_party,
           "wrong-policy": endpoint.wrong_policy}[case]  # fmt: skip
    assert who is not None
    return bearer(world.token(who))


def _assert_problem(response: TestResponse, status: int) -> None:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/problem+json"
    body = response.get_json()
    assert body["status"] == status and body["type"].startswith(PROBLEM_BASE)


def _cells() -> list[Any]:
    """Every endpoint x case, less the cells where the party or policy plays no part."""
    cells = []
    for endpoint in ENDPOINTS:
        for case in CASES:
            if (case == "wrong-party" and endpoint.wrong_party is None) or (
                case == "wrong-policy" and endpoint.wrong_policy is None
            ):
                continue
            cells.append(
                pytest.param(endpoint, case, id=f"{endpoint.method} {endpoint.path}-{case}")
            )
    return cells


@pytest.mark.parametrize(("endpoint", "case"), _cells())
def test_access_matrix(world: World, endpoint: Endpoint, case: str) -> None:
    headers = _headers(world, endpoint, case)
    if case == "expired":
        world.clock.advance(3600)
        try:
            response = endpoint.call(world, headers)
        finally:
            world.clock.advance(-3600)
    else:
        response = endpoint.call(world, headers)
    if case == "right":
        assert response.status_code in (200, 201), response.get_data(as_text=True)
        return
    status = 401 if case in ("no-token", "expired", "bad-signature") else 403
    _assert_problem(response, status)
    if status == 401:
        assert response.headers["WWW-Authenticate"].startswith("Bearer ")


def _example_path(rule: str) -> str:
    values = {"policy_id": POLICY_ID, "source": "police", "name": "dashboard.js"}
    return re.sub(r"<(?:[^:>]+:)?([^>]+)>", lambda m: values.get(m.group(1), "x"), rule)


def test_every_rule_but_the_public_ones_refuses_an_unauthenticated_call(world: World) -> None:
    app = world.client.application
    walked = 0
    for rule in app.url_map.iter_rules():
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            response = world.client.open(_example_path(rule.rule), method=method, json={})
            if rule.rule in PUBLIC:
                continue
            walked += 1
            assert response.status_code == 401, (method, rule.rule, response.status_code)
            assert response.headers["WWW-Authenticate"].startswith("Bearer ")
    assert walked >= len(ENDPOINTS)


def test_a_service_without_clients_denies_everything(tmp_path: Path, world: World) -> None:
    app = create_app(f"sqlite:///{tmp_path / 'db'}", [], [str(default_schema_path())], auth=None)
    closed = app.test_client()
    for endpoint in ENDPOINTS:
        _assert_problem(closed.open(endpoint.path, method=endpoint.method, json={}), 401)
    _assert_problem(closed.post("/v1/oauth/token", data={"grant_type": "client_credentials"}), 401)
    # a token the other service issued is worthless here
    _assert_problem(closed.get("/v1/policies", headers=bearer(world.token("analyst"))), 401)
