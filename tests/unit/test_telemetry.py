"""Log lines carry only whitelisted, value-free fields; /readyz and /metrics answer as
documented; every response carries a fresh request id."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import logging.config
import sys
from pathlib import Path

import pytest
from flask import Flask
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import text

from gateway.schema import default_schema_path
from keys.errors import StorageError
from linkage.app import PROBLEM_BASE, create_app
from policies.log_lines import REDACTED, JsonLineFormatter, logconfig_dict
from policies.model import dump_policy
from tests.policy_keys import enrolled_document, example_trust

METRICS_TOKEN = "metrics-token-for-unit-tests-9f2a"


def _line(msg: object, *args: object, **extra: object) -> dict[str, object]:
    record = logging.LogRecord("t", logging.INFO, __file__, 1, msg, args, None)
    record.__dict__.update(extra)
    return dict(json.loads(JsonLineFormatter().format(record)))


@given(st.text(min_size=1), st.text(min_size=1))
def test_string_arguments_and_free_text_fields_never_reach_a_line(value: str, other: str) -> None:
    line = _line("looked up %s for %s", value, other, caller=f"{value} {other}")
    assert line["message"] == f"looked up {REDACTED} for {REDACTED}"
    assert line["caller"] == REDACTED


def test_numbers_and_token_like_fields_are_kept_and_unknown_fields_dropped() -> None:
    line = _line("%d records", 12, route="/v1/policies/<policy_id>/hotspots", body="secret")
    assert line["message"] == "12 records"
    assert line["route"] == "/v1/policies/<policy_id>/hotspots"
    assert "body" not in line


def test_an_exception_is_its_class_and_frames_never_its_message() -> None:
    try:
        raise ValueError("943 476 5919 was not found")
    except ValueError:
        record = logging.LogRecord("t", logging.ERROR, __file__, 1, "failed", (), sys.exc_info())
    line = json.loads(JsonLineFormatter().format(record))
    assert line["error"] == "ValueError"
    assert "5919" not in json.dumps(line)
    assert line["frames"][0].startswith("test_telemetry.py:")


def test_gunicorn_logconfig_is_accepted_by_dictconfig() -> None:
    logging.config.dictConfig({**logconfig_dict("warning"), "root": {"level": "WARNING"}})


def test_without_migrating_on_start_an_unmigrated_database_stops_the_start(
    tmp_path: Path,
) -> None:
    with pytest.raises(StorageError, match="placelink linkage migrate"):
        _app(tmp_path, migrate_on_start=False)


def _app(tmp_path: Path, *, migrate_on_start: bool = True) -> Flask:
    policy = tmp_path / "policy.yaml"
    dump_policy(enrolled_document({}, today=dt.date.today()), policy)
    return create_app(
        f"sqlite:///{tmp_path / 'db.sqlite'}", [str(policy)], [str(default_schema_path())],
        trusted_dpo_keys=sorted(example_trust().trusted_dpo_keys),
        metrics_token_sha256=[hashlib.sha256(METRICS_TOKEN.encode()).hexdigest()],
        migrate_on_start=migrate_on_start,
    )  # fmt: skip


def test_readyz_is_ready_after_migrating(tmp_path: Path) -> None:
    response = _app(tmp_path).test_client().get("/readyz")
    assert response.status_code == 200
    assert response.get_json()["checks"] == {"database": "ok", "migrations": "ok", "policies": "ok"}


def test_readyz_is_a_503_problem_when_the_database_is_not_at_this_head(tmp_path: Path) -> None:
    app = _app(tmp_path)
    client = app.test_client()
    with app.extensions["placelink"].store.engine.begin() as connection:  # a newer release
        connection.execute(text("UPDATE alembic_version SET version_num = 'f00d'"))
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.content_type == "application/problem+json"
    body = response.get_json()
    assert body["type"] == PROBLEM_BASE + "not-ready"
    assert body["checks"]["migrations"].startswith("database at f00d, head is ")
    assert body["checks"]["database"] == "ok"
    assert client.get("/healthz").status_code == 200  # alive, just not ready


@pytest.mark.parametrize("header", ["", "Bearer wrong-token", f"Basic {METRICS_TOKEN}"])
def test_metrics_refuse_without_the_metrics_token(tmp_path: Path, header: str) -> None:
    response = _app(tmp_path).test_client().get("/metrics", headers={"Authorization": header})
    assert response.status_code == 401 and response.headers["WWW-Authenticate"]
    assert response.content_type == "application/problem+json"


def test_metrics_answer_the_metrics_token_and_count_requests(tmp_path: Path) -> None:
    client = _app(tmp_path).test_client()
    first = client.get("/healthz").headers["X-Request-Id"]
    assert first != client.get("/healthz").headers["X-Request-Id"]
    auth = {"Authorization": f"Bearer {METRICS_TOKEN}"}
    response = client.get("/metrics", headers=auth)
    assert response.status_code == 200
    assert response.content_type.startswith("text/plain")
    text = response.get_data(as_text=True)
    assert 'placelink_http_requests_total{method="GET",route="/healthz"' in text
