"""A linked world for hot-spot tests: the example policy (with the town's flags declared and
dates around today) and a store holding synthetic linked entities (placelink.entities)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import yaml

import policies
from gateway.schema import default_schema_path
from linkage.server import RunningService, start_service
from linkage.storage import Store
from placelink.entities import declare_flags, linked_records
from policies.model import Policy, dump_policy, parse_policy
from tests.oauth_clients import credentials, write_oauth_files
from tests.policy_keys import example_dpo_keys, example_trust, sign_document

EXAMPLE_POLICY = Path(policies.__file__).parent / "examples" / "task-force.yaml"
POLICY_ID = "seabrook-task-force"


def policy_document(**disclosure: Any) -> dict[str, Any]:
    document = declare_flags(yaml.safe_load(EXAMPLE_POLICY.read_text(encoding="utf-8")))
    today = dt.date.today()
    document["effective_from"] = today - dt.timedelta(days=30)
    document["expires_on"] = today + dt.timedelta(days=365)
    document["disclosure_control"] = {"min_cell": 8, "rounding": 5, **disclosure}
    return sign_document(document, example_dpo_keys().values())


def trusted_dpo_keys() -> list[str]:
    """The example DPO keys the service is told to trust (tests only: their seeds are public)."""
    return sorted(example_trust().trusted_dpo_keys)


def write_policy(folder: Path, **disclosure: Any) -> tuple[Path, Policy]:
    document = policy_document(**disclosure)
    path = folder / "policy.yaml"
    dump_policy(document, path)
    return path, parse_policy(document, where=str(path))


def start_linked_service(folder: Path, entities: int, **disclosure: Any) -> RunningService:
    """The real linkage service (gunicorn on loopback) over a store preloaded with
    ``entities`` synthetic linked entities, with the test OAuth clients of
    tests/oauth_clients.py (get the analyst's token with ``analyst_token(service.url)``);
    the caller stops it."""
    policy_path, _ = write_policy(folder, **disclosure)
    url = f"sqlite:///{folder / 'linkage.db'}"
    Store(url).load_linked_records(POLICY_ID, linked_records(entities, seed=11))
    return start_service(
        database_url=url,
        policy_paths=[policy_path],
        schema_paths=[default_schema_path()],
        log_path=folder / "service.log",
        trusted_dpo_keys=trusted_dpo_keys(),
        **write_oauth_files(folder / "oauth", {}).service_kwargs(),
    )


def analyst_token(url: str) -> str:
    """A real access token for the test client ``analyst`` from the service at ``url``."""
    return credentials(url, "analyst").access_token()
