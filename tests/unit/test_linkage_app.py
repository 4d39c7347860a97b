"""Unit tests of the linkage service's web layer (linkage.app) through Flask's test client:
the RFC 9457 problem shape of every error, the upload, link-run, hot-spot and links
endpoints with real OAuth tokens, and error bodies free of identifiers. (The access matrix
over every endpoint is tests/unit/test_access_matrix.py.)
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

import policies
from gateway.pipeline import context_for_policy, encode_csv
from gateway.pseudonyms import PseudonymMap
from gateway.schema import default_schema, default_schema_path
from gateway.submit import Submission, b64, prepare_submission
from keys import SigningKey, new_secret
from linkage.app import PROBLEM_BASE, create_app
from linkage.disclosure import SUPPRESSED
from linkage.intake import MAX_REQUEST_BYTES
from placelink.town import AGENCIES, Town, generate_town, write_canonical_csv
from policies.canonical import canonical_json
from policies.clks import EncodedBatch
from policies.model import Policy, dump_policy, load_policy
from tests.oauth_clients import authority, bearer, flask_token, gateway_client_id
from tests.policy_keys import enrolled_document, example_trust

EXAMPLE_POLICY = Path(policies.__file__).parent / "examples" / "task-force.yaml"
PROBLEM_KEYS = {"type", "title", "status", "detail"}


@dataclasses.dataclass(frozen=True)
class Setup:
    policy_path: Path
    policy: Policy
    keys: dict[str, SigningKey]
    batches: dict[str, EncodedBatch]
    csv_paths: dict[str, Path]
    town: Town


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Setup:
    """The example policy with node keys enrolled and dates around today, as a file, and
    every agency's records encoded under it."""
    folder: Path = tmp_path_factory.mktemp("app")
    keys = {agency: SigningKey.generate() for agency in AGENCIES}
    today = dt.datetime.now(dt.UTC).date()
    document = enrolled_document(keys, today=today)  # signed by every DPO
    policy_path = folder / "policy.yaml"
    dump_policy(document, policy_path)
    policy = load_policy(policy_path)
    context = context_for_policy(policy, default_schema(), epoch=0, today=today)
    town = generate_town(seed=9, people=250, areas=2)
    secret, batches, paths = new_secret(), {}, {}
    for agency in AGENCIES:
        paths[agency] = folder / f"{agency}.csv"
        write_canonical_csv(town.canonical_rows[agency], paths[agency])
        result = encode_csv(
            paths[agency], secret=secret, context=context, pseudonyms=PseudonymMap()
        )
        batches[agency] = result.batch
    return Setup(policy_path, policy, keys, batches, paths, town)


def make_client(tmp_path: Path, setup: Setup) -> FlaskClient:
    app = create_app(
        f"sqlite:///{tmp_path / 'linkage.db'}",
        [str(setup.policy_path)],
        [str(default_schema_path())],
        auth=authority(setup.keys),
        trusted_dpo_keys=sorted(example_trust().trusted_dpo_keys),
    )
    app.config["TEST_NODE_KEYS"] = setup.keys
    return app.test_client()


@pytest.fixture
def client(tmp_path: Path, setup: Setup) -> Iterator[FlaskClient]:
    yield make_client(tmp_path, setup)


def auth(client: FlaskClient, who: str) -> dict[str, str]:
    """A bearer header for ``who`` (a client id, or a party's gateway), cached per app."""
    cache = client.application.config.setdefault("TEST_TOKENS", {})
    if who not in cache:
        keys: dict[str, SigningKey] = client.application.config["TEST_NODE_KEYS"]
        if who in keys:
            cache[who] = flask_token(client, gateway_client_id(who), keys[who])
        else:
            cache[who] = flask_token(client, who)
    return bearer(cache[who])


def submission(setup: Setup, agency: str, batch: EncodedBatch | None = None) -> Submission:
    return prepare_submission(
        batch or setup.batches[agency],
        source=agency,
        policy_hash=setup.policy.policy_hash,
        node_key=setup.keys[agency],
    )


def post_batch(client: FlaskClient, sub: Submission, **headers: str) -> TestResponse:
    token = auth(client, str(sub.manifest["source"]))
    return client.post("/v1/batches", data=sub.body, headers={**sub.headers(), **token, **headers})


def assert_problem(response: TestResponse, status: int, slug: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/problem+json"
    body = response.get_json(force=True)
    assert isinstance(body, dict)
    assert set(body) == PROBLEM_KEYS
    assert body["status"] == status
    assert isinstance(body["title"], str) and body["title"]
    assert isinstance(body["detail"], str)
    assert body["type"].startswith(PROBLEM_BASE)
    if slug is not None:
        assert body["type"] == PROBLEM_BASE + slug
    return body


# --- public endpoints and problems ----------------------------------------------------


def test_healthz_needs_no_token(client: FlaskClient) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok"}


@pytest.mark.parametrize(
    ("method", "path", "status", "slug"),
    [
        ("GET", "/no/such/endpoint", 404, "not-found"),
        ("GET", "/v1/policies/seabrook-task-force", 404, "not-found"),
        ("GET", "/v1/batches", 405, "method-not-allowed"),
        ("DELETE", "/healthz", 405, "method-not-allowed"),
        ("GET", "/v1/policies/seabrook-task-force/hotspots", 405, "method-not-allowed"),
    ],
)
def test_unknown_paths_and_methods_are_problems(
    client: FlaskClient, method: str, path: str, status: int, slug: str
) -> None:
    assert_problem(client.open(path, method=method, headers=auth(client, "analyst")), status, slug)


# --- upload, link, hot-spots --------------------------------------------------------------


def test_valid_upload_is_created_then_acknowledged(client: FlaskClient, setup: Setup) -> None:
    sub = submission(setup, "housing")
    first, again = post_batch(client, sub), post_batch(client, sub)
    expected = {"batch_id": sub.manifest["batch_id"], "records": len(setup.batches["housing"])}
    assert first.status_code == 201
    assert first.get_json() == {**expected, "already_stored": False}
    assert again.status_code == 200
    assert again.get_json() == {**expected, "already_stored": True}


def resigned(sub: Submission, key: SigningKey, **changes: Any) -> dict[str, str]:
    manifest = canonical_json({**sub.manifest, **changes})
    return {"Placelink-Manifest": b64(manifest), "Placelink-Signature": b64(key.sign(manifest))}


@pytest.mark.parametrize(
    ("case", "status", "slug"),
    [
        ("wrong-content-type", 422, "invalid-input"),
        ("bad-signature", 401, "bad-signature"),
        ("not-a-party", 403, "forbidden"),
        ("unregistered-policy", 403, "forbidden"),  # the token is not bound to it
        ("reused-nonce", 409, "replay"),
    ],
)
def test_refused_uploads_map_to_problem_statuses(
    client: FlaskClient, setup: Setup, case: str, status: int, slug: str
) -> None:
    police = submission(setup, "police")
    assert post_batch(client, police).status_code == 201
    sub = submission(setup, "health")
    headers = {
        "wrong-content-type": {"Content-Type": "text/csv"},
        "bad-signature": resigned(sub, setup.keys["police"]),
        "not-a-party": resigned(sub, setup.keys["health"], source="linkage"),
        "unregistered-policy": resigned(sub, setup.keys["health"], policy_id="other"),
        "reused-nonce": resigned(sub, setup.keys["health"], nonce=police.manifest["nonce"]),
    }[case]
    assert_problem(post_batch(client, sub, **headers), status, slug)


@pytest.fixture
def linked_client(client: FlaskClient, setup: Setup) -> FlaskClient:
    for agency in AGENCIES:
        assert post_batch(client, submission(setup, agency)).status_code == 201
    return client


def test_link_run_then_hotspots_with_the_token(linked_client: FlaskClient, setup: Setup) -> None:
    run = linked_client.post(
        "/v1/policies/seabrook-task-force/link-runs", headers=auth(linked_client, "admin")
    )
    assert run.status_code == 201
    summary = run.get_json()
    assert summary["records"] == sum(len(b) for b in setup.batches.values())
    assert 0 < summary["entities"] <= summary["records"]
    response = linked_client.post(
        "/v1/policies/seabrook-task-force/hotspots",
        headers=auth(linked_client, "analyst"),
        json={"by": "area"},
    )
    assert response.status_code == 200
    body = response.get_json()
    assert (body["policy_id"], body["by"]) == ("seabrook-task-force", "area")
    assert body["rows"]
    for row in body["rows"]:
        assert set(row) == {"area", "entities"}  # one measure unless the query names some
        for name, value in row.items():
            if name != "area":
                assert value in (0, SUPPRESSED) or (value >= 10 and value % 5 == 0)


def test_custom_measures_and_links(linked_client: FlaskClient, setup: Setup) -> None:
    linked_client.post(
        "/v1/policies/seabrook-task-force/link-runs", headers=auth(linked_client, "admin")
    )
    query = {"measures": [{"name": "known", "min_agencies": 1}]}
    response = linked_client.post(
        "/v1/policies/seabrook-task-force/hotspots",
        headers=auth(linked_client, "analyst"),
        json=query,
    )
    assert response.status_code == 200
    assert all(set(row) == {"area", "known"} for row in response.get_json()["rows"])
    links = linked_client.get(
        "/v1/policies/seabrook-task-force/links/school", headers=auth(linked_client, "school")
    )
    assert links.status_code == 200
    batch = setup.batches["school"]
    assert [item["pseudonym"] for item in links.get_json()["links"]] == [
        batch.pseudonym_hex(i) for i in range(len(batch))
    ]


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"by": "postcode"}, 403),
        ({"by": "date_of_birth"}, 403),
        ({"by": "event_month"}, 403),  # released, but P4 lets the task force group by area only
        ({"measures": "known"}, 422),
        ({"measures": [{"min_agencies": 2}]}, 422),
        ({"measures": [{"name": "x", "min_agencies": "two"}]}, 422),
        ({"measures": [{"name": "x", "all_of": 3}]}, 422),
        ([{"by": "area"}], 422),
        ("area", 422),
    ],
)
def test_malformed_or_refused_hotspot_queries_are_problems(
    linked_client: FlaskClient, body: Any, status: int
) -> None:
    linked_client.post(
        "/v1/policies/seabrook-task-force/link-runs", headers=auth(linked_client, "admin")
    )
    response = linked_client.post(
        "/v1/policies/seabrook-task-force/hotspots",
        headers=auth(linked_client, "analyst"),
        json=body,
    )
    assert_problem(response, status)


def test_links_are_refused_to_a_non_provider(linked_client: FlaskClient) -> None:
    linked_client.post(
        "/v1/policies/seabrook-task-force/link-runs", headers=auth(linked_client, "admin")
    )
    response = linked_client.get(
        "/v1/policies/seabrook-task-force/links/linkage", headers=auth(linked_client, "police")
    )
    assert_problem(response, 403, "forbidden")  # police's token reads police's links only


# --- no identifiers in error bodies -------------------------------------------------------


def identifiers(town: Town) -> set[str]:
    values = {
        row[column]
        for rows in town.canonical_rows.values()
        for row in rows
        for column in ("given_name", "family_name", "postcode", "nhs_number")
        if len(row[column]) >= 4
    }
    # Lower-cased short names ("long", "hall") are English words; search those as written.
    forms = {form for v in values for form in (v, v.upper(), v.replace(" ", ""))}
    return forms | {v.lower() for v in values if len(v) >= 8}


def test_error_bodies_never_contain_identifiers(client: FlaskClient, setup: Setup) -> None:
    rows = setup.town.canonical_rows["police"]
    csv_bytes = setup.csv_paths["police"].read_bytes()
    sub = submission(setup, "police")
    leaky = dataclasses.replace(
        setup.batches["police"],
        attribute_names=(*setup.batches["police"].attribute_names, "nhs_number"),
        attributes=[
            [*values, row["nhs_number"]]
            for values, row in zip(setup.batches["police"].attributes, rows, strict=True)
        ],
    )
    leaky_sub = submission(setup, "police", leaky)
    csv_signed = dataclasses.replace(sub, body=csv_bytes)
    person = next(r for r in rows if len(r["family_name"]) >= 4 and r["nhs_number"])
    name, nhs = person["family_name"], person["nhs_number"]
    responses = [
        post_batch(client, csv_signed),  # a CSV instead of a .clks body
        post_batch(client, csv_signed, **{"Content-Type": "text/csv"}),
        post_batch(  # a signed CSV body: parsed and refused
            client,
            csv_signed,
            **resigned(
                csv_signed, setup.keys["police"], body_sha256=hashlib.sha256(csv_bytes).hexdigest()
            ),
        ),
        post_batch(client, leaky_sub),  # an attribute the policy does not release
        post_batch(client, sub, **resigned(sub, setup.keys["police"], source=name)),
        post_batch(client, sub, **{"Placelink-Manifest": b64(csv_bytes)}),
        client.post(
            "/v1/policies/seabrook-task-force/hotspots",
            headers=auth(client, "analyst"),
            json={"measures": [{"name": nhs, "min_agencies": name}]},
        ),
        client.get(f"/v1/{name}/{nhs}", headers=auth(client, "analyst")),
        client.post("/v1/policies/seabrook-task-force/link-runs", headers={"Authorization": nhs}),
    ]
    needles = identifiers(setup.town)
    assert name in needles and nhs in needles and len(needles) > 100
    assert csv_bytes.decode() and any(v in csv_bytes.decode() for v in needles)
    for response in responses:
        assert_problem(response, response.status_code)
        assert 400 <= response.status_code < 500
        text = response.get_data(as_text=True)
        found = sorted(v for v in needles if v in text)
        assert not found, (response.status_code, text)


def test_the_upload_is_stored_once_even_under_retries(client: FlaskClient, setup: Setup) -> None:
    sub = submission(setup, "health")
    statuses = [post_batch(client, sub).status_code for _ in range(3)]
    assert statuses == [201, 200, 200]
    client.post("/v1/policies/seabrook-task-force/link-runs", headers=auth(client, "admin"))
    links = client.get(
        "/v1/policies/seabrook-task-force/links/health", headers=auth(client, "health")
    )
    assert len(links.get_json()["links"]) == len(setup.batches["health"])
    assert np.unique([link["pseudonym"] for link in links.get_json()["links"]]).size == len(
        setup.batches["health"]
    )


def test_a_batch_over_the_one_request_limit_is_refused_unread(
    client: FlaskClient, setup: Setup
) -> None:
    sub = submission(setup, "police")
    declared = str(MAX_REQUEST_BYTES + 1)  # declared, never sent: refused before reading
    headers = {**sub.headers(), **auth(client, "police")}
    answer = client.post("/v1/batches", input_stream=io.BytesIO(sub.body), headers=headers,
                         environ_overrides={"CONTENT_LENGTH": declared})  # fmt: skip
    body = assert_problem(answer, 422, "invalid-input")
    assert "POST /v1/uploads" in body["detail"]
