"""`placelink hotspots` against the real linkage service (gunicorn on loopback): the command's
answer equals the API's, the CSV export carries published figures only, and a missing token is
a failure (exit 1) that names the fix."""

from __future__ import annotations

import csv
import io
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from linkage.server import RunningService
from tests.hotspot_world import POLICY_ID, start_linked_service
from tests.oauth_clients import TEST_SECRETS, credentials

ANALYST = {"PLACELINK_CLIENT_ID": "analyst", "PLACELINK_CLIENT_SECRET": TEST_SECRETS["analyst"]}
CREDENTIAL_VARIABLES = ("PLACELINK_TOKEN", "PLACELINK_CLIENT_ID", "PLACELINK_CLIENT_SECRET")


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningService]:
    running = start_linked_service(tmp_path_factory.mktemp("cli-hotspots"), 2000)
    yield running
    running.stop()


def placelink(*args: str, **credentials: str) -> subprocess.CompletedProcess[str]:
    """The command with the analyst's client credentials in its environment, unless others
    are given (``{}``: none at all)."""
    env = {k: v for k, v in os.environ.items() if k not in CREDENTIAL_VARIABLES}
    env.update(ANALYST if "none" not in credentials and not credentials else {})
    env.update({k: v for k, v in credentials.items() if k != "none"})
    command = [sys.executable, "-m", "placelink", "hotspots", "--policy", POLICY_ID, *args]
    return subprocess.run(
        command, capture_output=True, text=True, timeout=120, env=env, check=False
    )


def test_the_command_answers_what_the_api_answers(service: RunningService) -> None:
    result = placelink("--url", service.url, "--min-agencies", "3", "--json")
    assert result.returncode == 0, result.stderr
    assert "query #" in result.stderr
    api = requests.post(
        f"{service.url}/v1/policies/{POLICY_ID}/hotspots",
        json={"filter": {"min_agencies": 3}},
        headers=credentials(service.url, "analyst").headers(),
        timeout=30,
    ).json()
    import json

    assert json.loads(result.stdout)["rows"] == api["rows"]


def test_csv_export_and_readable_table(service: RunningService) -> None:
    as_csv = placelink("--url", service.url, "--min-agencies", "2", "--all-of", "police", "--csv")
    assert as_csv.returncode == 0, as_csv.stderr
    rows = list(csv.DictReader(io.StringIO(as_csv.stdout)))
    assert rows[-1]["area"] == "all areas" and list(rows[0]) == ["area", "entities"]
    for row in rows:
        assert row["entities"] == "*" or int(row["entities"]) % 5 == 0
    table = placelink("--url", service.url, "--kind", "cooccurrence", "--min-agencies", "2")
    assert table.returncode == 0 and table.stdout.splitlines()[0].split()[:2] == [
        "agency",
        "police",
    ]


def test_missing_token_and_refusals_fail_with_a_fix(
    service: RunningService, tmp_path: Path
) -> None:
    missing = placelink("--url", service.url, none="")
    assert missing.returncode == 1 and "fix:" in missing.stderr
    assert "PLACELINK_CLIENT_SECRET" in missing.stderr
    wrong = placelink("--url", service.url, PLACELINK_TOKEN="not-a-token")
    assert wrong.returncode == 1 and "refused" in wrong.stderr
    bad_secret = placelink(
        "--url", service.url, PLACELINK_CLIENT_ID="analyst", PLACELINK_CLIENT_SECRET="wrong"
    )
    assert bad_secret.returncode == 1 and "invalid_client" in bad_secret.stderr
    wrong_party = placelink(
        "--url", service.url, PLACELINK_CLIENT_ID="police-analyst",
        PLACELINK_CLIENT_SECRET=TEST_SECRETS["police-analyst"],
    )  # fmt: skip
    assert wrong_party.returncode == 1 and "refused" in wrong_party.stderr
    unknown = placelink("--url", service.url, "--all-of", "probation")
    assert unknown.returncode == 1 and "agency" in unknown.stderr
    (tmp_path / "secret").write_text(TEST_SECRETS["analyst"] + "\n", encoding="utf-8")
    secret_file = str(tmp_path / "secret")
    from_file = placelink("--url", service.url, "--client-id", "analyst",
                          "--client-secret-file", secret_file, none="")  # fmt: skip
    assert from_file.returncode == 0, from_file.stderr
    token = credentials(service.url, "analyst").access_token()
    (tmp_path / "token").write_text(token + "\n", encoding="utf-8")
    with_token = placelink("--url", service.url, "--token-file", str(tmp_path / "token"), none="")
    assert with_token.returncode == 0, with_token.stderr
