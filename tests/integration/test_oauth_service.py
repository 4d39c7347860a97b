"""OAuth through the real service (gunicorn on loopback): a gateway's private_key_jwt and an
analyst's client secret against the real token endpoint, the configured token lifetime, and
the party binding of the links endpoint."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from gateway.schema import default_schema_path
from keys import SigningKey
from linkage.server import RunningService, start_service
from linkage.storage import Store
from placelink.entities import linked_records
from tests.hotspot_world import POLICY_ID, trusted_dpo_keys, write_policy
from tests.oauth_clients import credentials, gateway_client_id, write_oauth_files

KEYS = {"police": SigningKey.generate(), "health": SigningKey.generate()}


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningService]:
    folder: Path = tmp_path_factory.mktemp("oauth-service")
    policy_path, _ = write_policy(folder)
    url = f"sqlite:///{folder / 'linkage.db'}"
    Store(url).load_linked_records(POLICY_ID, linked_records(200, seed=5))
    running = start_service(
        database_url=url, policy_paths=[policy_path], schema_paths=[default_schema_path()],
        log_path=folder / "service.log", trusted_dpo_keys=trusted_dpo_keys(),
        token_lifetime_s=120, **write_oauth_files(folder / "oauth", KEYS).service_kwargs(),
    )  # fmt: skip
    yield running
    running.stop()


def test_a_gateway_reads_its_own_links_and_no_others(service: RunningService) -> None:
    police = credentials(service.url, gateway_client_id("police"), KEYS["police"])
    base = f"{service.url}/v1/policies/{POLICY_ID}/links"
    own = requests.get(f"{base}/police", headers=police.headers(), timeout=30)
    assert own.status_code == 200, own.text
    other = requests.get(f"{base}/health", headers=police.headers(), timeout=30)
    assert other.status_code == 403 and other.json()["type"].endswith("/forbidden")
    anonymous = requests.get(f"{base}/police", timeout=30)
    assert anonymous.status_code == 401 and anonymous.headers["WWW-Authenticate"]


def test_the_configured_lifetime_and_the_analysts_scope(service: RunningService) -> None:
    answer = requests.post(
        f"{service.url}/v1/oauth/token",
        data={"grant_type": "client_credentials"},
        auth=("analyst", credentials(service.url, "analyst").client_secret or ""),
        timeout=30,
    ).json()
    assert answer["expires_in"] == 120 and answer["token_type"] == "Bearer"
    headers = {"Authorization": f"Bearer {answer['access_token']}"}
    asked = requests.post(
        f"{service.url}/v1/policies/{POLICY_ID}/hotspots", json={}, headers=headers, timeout=30
    )
    assert asked.status_code == 200, asked.text
    links = requests.get(
        f"{service.url}/v1/policies/{POLICY_ID}/links/police", headers=headers, timeout=30
    )
    assert links.status_code == 403  # an analyst never reads a provider's links
