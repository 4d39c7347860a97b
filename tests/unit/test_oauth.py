"""The token endpoint and the token checks: client authentication by client secret (HTTP Basic
and form) and by private_key_jwt (Ed25519), scopes, expiry with an injected clock, replayed or
misaddressed assertions, the clients file's errors, an external issuer's JWKS, and token
parsing under hypothesis."""

from __future__ import annotations

import base64
import hashlib
import json
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from authlib.oauth2.rfc7523 import private_key_jwt_sign
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from joserfc import jwt
from joserfc.jwk import KeySet, OKPKey

from gateway.oauth_client import ASSERTION_TYPE
from gateway.schema import default_schema_path
from keys import SigningKey
from keys.errors import AccessError, ConfigError, PlacelinkError
from linkage.app import create_app
from linkage.auth import LEEWAY_S, TokenAuthority, Unauthenticated, bearer_token
from linkage.auth_config import authority_from_environment
from linkage.clients import hash_client_secret, parse_clients, secret_matches
from tests.oauth_clients import (
    POLICY_ID,
    TEST_SECRETS,
    Clock,
    authority,
    bearer,
    clients_document,
    flask_token,
    gateway_client_id,
)

POLICE = SigningKey.generate()
TOKEN_URL = "http://localhost/v1/oauth/token"


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def client(tmp_path: Path, clock: Clock) -> FlaskClient:
    app = create_app(
        f"sqlite:///{tmp_path / 'db'}", [], [str(default_schema_path())],
        auth=authority({"police": POLICE}, clock=clock),
    )  # fmt: skip
    return app.test_client()


def _claims(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    claims: dict[str, Any] = json.loads(base64.urlsafe_b64decode(payload + "=" * 4))
    return claims


def _assertion(key: Ed25519PrivateKey, client_id: str, **kwargs: Any) -> str:
    kwargs.setdefault("expires_in", 60)
    signed = private_key_jwt_sign(
        OKPKey.import_key(key), client_id, kwargs.pop("aud", TOKEN_URL), alg="Ed25519", **kwargs
    )
    return signed.decode() if isinstance(signed, bytes) else str(signed)


def _post_assertion(client: FlaskClient, assertion: str, **form: str) -> Any:
    data = {"grant_type": "client_credentials", "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": assertion, **form}  # fmt: skip
    return client.post("/v1/oauth/token", data=data)


def test_a_secret_client_gets_a_short_lived_token_bound_to_its_party_and_policies(
    client: FlaskClient,
) -> None:
    token = flask_token(client, "analyst")
    claims = _claims(token)
    assert claims["sub"] == claims["client_id"] == "analyst"
    assert (claims["party"], claims["policies"], claims["scope"]) == (
        "task_force", [POLICY_ID], "query:hotspots"
    )  # fmt: skip
    assert claims["exp"] - claims["iat"] == 600 and claims["aud"] == "placelink-linkage"
    assert claims["jti"] and claims["iss"] == "placelink-linkage"
    assert TEST_SECRETS["analyst"] not in token
    assert client.get("/v1/policies", headers=bearer(token)).status_code == 200


def test_the_secret_may_come_in_the_form_and_a_wrong_one_is_refused(client: FlaskClient) -> None:
    form = {"grant_type": "client_credentials", "client_id": "analyst"}
    good = client.post("/v1/oauth/token", data={**form, "client_secret": TEST_SECRETS["analyst"]})
    assert good.status_code == 200 and good.headers["Cache-Control"] == "no-store"
    bad = client.post("/v1/oauth/token", data={**form, "client_secret": "x" * 36})
    assert bad.status_code == 400 and bad.get_json()["error"] == "invalid_client"
    basic = base64.b64encode(b"analyst:wrong").decode()
    refused = client.post("/v1/oauth/token", data={"grant_type": "client_credentials"},
                          headers={"Authorization": f"Basic {basic}"})  # fmt: skip
    assert refused.status_code == 401 and refused.get_json()["error"] == "invalid_client"
    unknown = client.post("/v1/oauth/token", data={**form, "client_id": "nobody",
                                                   "client_secret": "x" * 36})  # fmt: skip
    assert unknown.status_code == 400


def test_a_gateway_authenticates_with_its_node_key(client: FlaskClient) -> None:
    token = flask_token(client, gateway_client_id("police"), POLICE)
    assert _claims(token)["party"] == "police"
    assert set(_claims(token)["scope"].split()) == {"submit", "links:read"}


@pytest.mark.parametrize(
    "case", ["other-key", "wrong-audience", "replayed", "too-long", "secret-client", "unknown"]
)
def test_bad_client_assertions_are_refused(client: FlaskClient, case: str) -> None:
    gateway = gateway_client_id("police")
    assertion = {
        "other-key": lambda: _assertion(Ed25519PrivateKey.generate(), gateway),
        "wrong-audience": lambda: _assertion(POLICE.private, gateway, aud="https://elsewhere"),
        "replayed": lambda: _assertion(POLICE.private, gateway, claims={"jti": "once"}),
        "too-long": lambda: _assertion(POLICE.private, gateway, expires_in=3600),
        "secret-client": lambda: _assertion(POLICE.private, "analyst"),
        "unknown": lambda: _assertion(POLICE.private, "nobody"),
    }[case]()
    if case == "replayed":
        assert _post_assertion(client, assertion).status_code == 200
    else:  # the same request, signed right, passes: the case alone is what is refused
        assert _post_assertion(client, _assertion(POLICE.private, gateway)).status_code == 200
    response = _post_assertion(client, assertion)
    assert response.status_code in (400, 401)
    assert response.get_json()["error"] == "invalid_client"


def test_an_assertion_used_at_one_worker_is_refused_at_another(
    tmp_path: Path, clock: Clock
) -> None:
    """Two workers (two apps, each its own token authority) on one database: the used
    assertion is kept in the database, not in the worker that accepted it."""
    url = f"sqlite:///{tmp_path / 'db'}"
    workers = [
        create_app(url, [], [str(default_schema_path())],
                   auth=authority({"police": POLICE}, clock=clock)).test_client()
        for _ in range(2)
    ]  # fmt: skip
    assertion = _assertion(POLICE.private, gateway_client_id("police"))
    assert _post_assertion(workers[0], assertion).status_code == 200
    replayed = _post_assertion(workers[1], assertion)
    assert replayed.status_code in (400, 401)
    assert replayed.get_json()["error"] == "invalid_client"
    fresh = _assertion(POLICE.private, gateway_client_id("police"))
    assert _post_assertion(workers[1], fresh).status_code == 200


def test_the_ledger_forgets_assertions_once_they_expire(tmp_path: Path) -> None:
    from sqlalchemy import select

    from linkage.assertion_ledger import GRACE_S
    from linkage.storage import Store
    from linkage.tables import UsedAssertionRow

    store = Store(f"sqlite:///{tmp_path / 'db'}")
    ledger, now = store.assertions, 1_000_000.0
    assert ledger.first_use("a", expires_at=now + 60, now=now)
    assert not ledger.first_use("a", expires_at=now + 60, now=now + 30)
    assert ledger.first_use("b", expires_at=now + 60, now=now + 61 + GRACE_S)  # "a" is gone
    with store.engine.connect() as connection:
        rows = connection.execute(select(UsedAssertionRow.jti_sha256)).scalars().all()
        assert rows == [hashlib.sha256(b"b").hexdigest()]  # a digest, not the client's jti


def test_scopes_beyond_the_clients_are_refused(client: FlaskClient) -> None:
    form = {"grant_type": "client_credentials", "client_id": "analyst",
            "client_secret": TEST_SECRETS["analyst"]}  # fmt: skip
    asked = client.post("/v1/oauth/token", data={**form, "scope": "query:hotspots admin"})
    assert asked.status_code == 400 and asked.get_json()["error"] == "invalid_scope"
    other_grant = client.post("/v1/oauth/token", data={**form, "grant_type": "password"})
    assert other_grant.status_code == 400


def test_tokens_expire(client: FlaskClient, clock: Clock) -> None:
    token = flask_token(client, "analyst")
    clock.advance(600 + LEEWAY_S - 5)
    assert client.get("/v1/policies", headers=bearer(token)).status_code == 200
    clock.advance(10)
    expired = client.get("/v1/policies", headers=bearer(token))
    assert expired.status_code == 401 and "WWW-Authenticate" in expired.headers


def test_a_token_from_the_future_is_refused(clock: Clock) -> None:
    issuer = authority({}, clock=clock)
    clock.advance(3 * LEEWAY_S)
    token = issuer.issue(issuer.clients["analyst"], frozenset({"query:hotspots"}))
    clock.advance(-3 * LEEWAY_S)
    with pytest.raises(Unauthenticated):
        issuer.verify(token["access_token"])


def test_the_registry_narrows_what_a_token_claims() -> None:
    issuer = authority({})
    analyst = issuer.clients["analyst"]
    token = issuer.issue(analyst, frozenset({"query:hotspots"}))["access_token"]
    narrowed = TokenAuthority(
        {"analyst": parse_clients({"clients": [{**clients_document({})["clients"][0],
                                                  "scopes": ["admin"]}]})["analyst"]},
        "placelink-linkage", signing_key=issuer.signing_key,
    )  # fmt: skip
    caller = narrowed.verify(token)
    assert caller.scopes == frozenset()  # the file no longer grants what the token names
    with pytest.raises(AccessError):
        caller.require("query:hotspots")
    gone = TokenAuthority({}, "placelink-linkage", signing_key=issuer.signing_key)
    with pytest.raises(Unauthenticated):
        gone.verify(token)


@settings(max_examples=200, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.text(max_size=300))
def test_any_header_that_is_not_a_valid_token_is_one_opaque_401(header: str) -> None:
    issuer = authority({})
    try:
        issuer.verify(bearer_token(header))
    except Unauthenticated as refused:
        assert refused.message == "a valid access token is required"
    else:  # pragma: no cover - hypothesis cannot forge an Ed25519 signature
        pytest.fail("a random header verified")


@settings(max_examples=100)
@given(st.integers(min_value=0, max_value=10_000), st.sampled_from("AQgw_-"))
def test_a_changed_character_anywhere_in_a_real_token_is_refused(at: int, char: str) -> None:
    issuer = authority({})
    token = str(issuer.issue(issuer.clients["analyst"], frozenset())["access_token"])
    position = at % len(token)
    changed = token[:position] + char + token[position + 1 :]
    if changed == token:
        return
    try:
        issuer.verify(changed)
    except Unauthenticated:
        return
    # base64url's last character may carry unused bits: the same bytes, so the same token
    assert base64.urlsafe_b64decode(changed.split(".")[2] + "==") == base64.urlsafe_b64decode(
        token.split(".")[2] + "=="
    )


@settings(max_examples=10, deadline=None)
@given(st.text(min_size=32, max_size=80))
def test_client_secret_hashes_round_trip(secret: str) -> None:
    stored = hash_client_secret(secret)
    assert secret not in stored and secret_matches(stored, secret)
    assert not secret_matches(stored, secret + "x")


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"scopes": ["submit", "everything"]}, "scopes"),
        ({"public_key": None, "secret_hash": None}, "exactly one"),
        ({"secret_hash": "plain-text-secret"}, "exactly one"),
        ({"public_key": "abc"}, "public_key"),
        ({"client_id": "has space"}, "client_id"),
        ({"policies": []}, "policies"),
        ({"party": ""}, "party"),
    ],
)
def test_a_bad_clients_file_is_a_clear_error(change: dict[str, Any], field: str) -> None:
    entry = {**clients_document({"police": POLICE})["clients"][0], **change}
    entry = {k: v for k, v in entry.items() if v is not None}
    with pytest.raises(ConfigError, match=field) as raised:
        parse_clients({"clients": [entry]})
    assert raised.value.fix


def test_an_external_issuers_jwks_is_trusted_and_the_endpoint_refuses(tmp_path: Path) -> None:
    external = OKPKey.generate_key("Ed25519", parameters={"kid": "ext-1"})
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps(KeySet([external]).as_dict(private=False)))
    clients = tmp_path / "clients.yaml"
    clients.write_text(yaml.safe_dump(clients_document({})))
    env = {"PLACELINK_CLIENTS": str(clients), "PLACELINK_OAUTH_JWKS": str(jwks),
           "PLACELINK_OAUTH_ISSUER": "https://idp.example"}  # fmt: skip
    found = authority_from_environment(env)
    assert found is not None and not found.issues_tokens
    now = int(time.time())
    claims = {"iss": "https://idp.example", "aud": "placelink-linkage", "sub": "analyst",
              "scope": "query:hotspots", "iat": now, "exp": now + 300}  # fmt: skip
    token = jwt.encode({"alg": "Ed25519", "kid": "ext-1"}, claims, external,
                       algorithms=["Ed25519"])  # fmt: skip
    caller = found.verify(token)
    assert (caller.party, caller.policies) == ("task_force", frozenset({POLICY_ID}))
    wrong_issuer = jwt.encode({"alg": "Ed25519", "kid": "ext-1"}, {**claims, "iss": "other"},
                              external, algorithms=["Ed25519"])  # fmt: skip
    with pytest.raises(Unauthenticated):
        found.verify(wrong_issuer)
    app = create_app(f"sqlite:///{tmp_path / 'db'}", [], [], auth=found)
    refused = app.test_client().post("/v1/oauth/token", data={"grant_type": "client_credentials"})
    assert refused.status_code == 401
    with pytest.raises(ConfigError, match="ISSUER"):
        authority_from_environment({**env, "PLACELINK_OAUTH_ISSUER": ""})
    jwks.write_text(json.dumps(KeySet([external]).as_dict(private=True)))
    with pytest.raises(ConfigError, match="private"):
        authority_from_environment(env)


def test_the_signing_key_file_is_read_as_configured(tmp_path: Path) -> None:
    from keys import save_signing_key

    clients = tmp_path / "clients.yaml"
    clients.write_text(yaml.safe_dump(clients_document({})))
    key = tmp_path / "oauth.pem"
    save_signing_key(key, SigningKey.generate(), passphrase="a long test passphrase")
    env = {"PLACELINK_CLIENTS": str(clients), "PLACELINK_OAUTH_SIGNING_KEY": str(key)}
    assert authority_from_environment({}) is None
    with pytest.raises(ConfigError):
        authority_from_environment({"PLACELINK_CLIENTS": str(clients)})
    with pytest.raises(PlacelinkError):
        authority_from_environment(env)
    found = authority_from_environment(
        {**env, "PLACELINK_OAUTH_KEY_PASSPHRASE": "a long test passphrase",
         "PLACELINK_TOKEN_LIFETIME": "300"}
    )  # fmt: skip
    assert found is not None and found.lifetime_s == 300
    with pytest.raises(ConfigError, match="LIFETIME"):
        authority_from_environment({**env, "PLACELINK_OAUTH_KEY_PASSPHRASE": "a long test "
                                    "passphrase", "PLACELINK_TOKEN_LIFETIME": "86400"})  # fmt: skip
