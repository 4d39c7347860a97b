"""The hot-spot endpoints and the dashboard routes (linkage.hotspot_routes, linkage.dashboard)
through Flask's test client: who may call what (allow/deny matrix), JSON and CSV answers, the
budget refusal as problem+json, and a dashboard page that holds no data and loads nothing from
outside."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient

from gateway.schema import default_schema_path
from linkage.app import PROBLEM_BASE, create_app
from linkage.disclosure import SUPPRESSED
from placelink.entities import linked_records
from tests.hotspot_world import POLICY_ID, trusted_dpo_keys, write_policy
from tests.oauth_clients import authority, bearer, flask_token

BASE = f"/v1/policies/{POLICY_ID}"


def client_for(tmp_path: Path, **disclosure: Any) -> FlaskClient:
    path, _ = write_policy(tmp_path, **disclosure)
    app = create_app(
        f"sqlite:///{tmp_path / 'linkage.db'}",
        [str(path)],
        [str(default_schema_path())],
        auth=authority({}),
        trusted_dpo_keys=trusted_dpo_keys(),
    )
    app.extensions["placelink"].store.load_linked_records(POLICY_ID, linked_records(1500, seed=2))
    client = app.test_client()
    AUTH.update(bearer(flask_token(client, "analyst")))
    return client


AUTH: dict[str, str] = {}  # the analyst's real token, from the token endpoint


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> FlaskClient:
    return client_for(tmp_path_factory.mktemp("routes"))


ENDPOINTS = [
    ("GET", "/v1/policies", None),
    ("POST", f"{BASE}/hotspots", {"filter": {"min_agencies": 2}}),
    ("POST", f"{BASE}/hotspots?format=csv", {}),
    ("GET", f"{BASE}/hotspots/options", None),
    ("GET", f"{BASE}/privacy-budget", None),
]
CREDENTIALS = ["valid-token", "no-token", "wrong-token", "token-as-cookie", "token-in-basic"]


def _credentials(who: str) -> dict[str, str]:
    token = AUTH["Authorization"].removeprefix("Bearer ")
    return {
        "valid-token": AUTH,
        "no-token": {},
        "wrong-token": {"Authorization": "Bearer nope"},
        "token-as-cookie": {"Cookie": f"token={token}"},
        "token-in-basic": {"Authorization": f"Basic {token}"},
    }[who]


@pytest.mark.parametrize(("method", "path", "body"), ENDPOINTS)
@pytest.mark.parametrize("who", list(CREDENTIALS))
def test_every_hotspot_endpoint_denies_by_default(
    client: FlaskClient, method: str, path: str, body: Any, who: str
) -> None:
    response = client.open(path, method=method, headers=_credentials(who), json=body)
    if who == "valid-token":
        assert response.status_code == 200, response.get_data(as_text=True)
    else:
        assert response.status_code == 401
        assert response.mimetype == "application/problem+json"
        assert response.get_json()["type"] == PROBLEM_BASE + "unauthenticated"


def test_json_and_csv_answers_carry_the_same_published_figures(client: FlaskClient) -> None:
    query = {"filter": {"min_agencies": 2}, "measures": [{"name": "people"}]}
    body = client.post(f"{BASE}/hotspots", headers=AUTH, json=query).get_json()
    as_csv = client.post(f"{BASE}/hotspots?format=csv", headers=AUTH, json=query)
    accept = client.post(f"{BASE}/hotspots", headers={**AUTH, "Accept": "text/csv"}, json=query)
    assert as_csv.mimetype == accept.mimetype == "text/csv"
    assert "attachment" in as_csv.headers["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(as_csv.get_data(as_text=True))))
    expected = [{"area": r["area"], "people": str(r["people"])} for r in body["rows"]]
    expected.append({"area": "all areas", "people": str(body["total"]["people"])})
    assert rows == expected
    assert accept.get_data() == as_csv.get_data()
    assert any(r["people"] not in ("0", SUPPRESSED) for r in rows)


def test_options_name_what_a_query_may_use(client: FlaskClient) -> None:
    options = client.get(f"{BASE}/hotspots/options", headers=AUTH).get_json()
    assert options["agencies"] == ["police", "childrens_services", "housing", "health", "school"]
    assert options["flags"] == ["asb_incident", "open_case", "missed_school"]
    assert options["areas"][0] == "SB1 1" and options["months"][0] == "2024-01"
    assert options["disclosure"]["min_cell"] == 8


@pytest.mark.parametrize(
    ("body", "status", "slug"),
    [
        ({"by": "postcode"}, 403, "policy-refused"),
        ({"filter": {"all_of": ["probation"]}}, 403, "policy-refused"),
        ({"filter": {"min_agencies": "many"}}, 422, "invalid-input"),
        ({"kind": "heatmap"}, 422, "invalid-input"),
    ],
)
def test_refusals_are_problems(client: FlaskClient, body: Any, status: int, slug: str) -> None:
    response = client.post(f"{BASE}/hotspots", headers=AUTH, json=body)
    assert response.status_code == status
    assert response.get_json()["type"] == PROBLEM_BASE + slug
    assert "probation" not in response.get_data(as_text=True)  # no echo of what was asked


def test_a_spent_budget_is_a_clear_refusal(tmp_path: Path) -> None:
    client = client_for(tmp_path, epsilon_per_query=1.0, epsilon_total=1.0)
    first = client.post(f"{BASE}/hotspots", headers=AUTH, json={})
    assert first.status_code == 200 and first.get_json()["budget"]["epsilon_remaining"] == 0
    refused = client.post(f"{BASE}/hotspots", headers=AUTH, json={})
    assert refused.status_code == 403
    problem = refused.get_json()
    assert problem["type"] == PROBLEM_BASE + "privacy-budget-spent"
    assert "budget" in problem["title"] and problem["detail"]
    budget = client.get(f"{BASE}/privacy-budget", headers=AUTH).get_json()["budget"]
    assert budget["epsilon_spent"] == 1.0


def test_the_dashboard_page_holds_no_data_and_loads_only_its_own_assets(
    client: FlaskClient,
) -> None:
    page = client.get("/dashboard")
    assert page.status_code == 200 and page.mimetype == "text/html"
    text = page.get_data(as_text=True)
    assert "http://" not in text and "https://" not in text
    assert 'src="/dashboard/assets/dashboard.js"' in text and "signin-form" in text
    policy = page.headers["Content-Security-Policy"]
    assert "default-src 'none'" in policy and "script-src 'self'" in policy
    script = client.get("/dashboard/assets/dashboard.js")
    assert script.status_code == 200 and script.mimetype == "text/javascript"
    assert "sessionStorage" in script.get_data(as_text=True)
    assert client.get("/dashboard/assets/../app.py").status_code == 404
    assert client.get("/dashboard/assets/secret.txt").status_code == 404
