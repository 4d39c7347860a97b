"""The service's audit hooks and endpoints through Flask's test client: uploads accepted and
refused are recorded (a refused upload's claims only when they name what the service knows),
an accepted upload's answer carries a checkpoint that verifies under the service key, and the
endpoints need their tokens."""

from __future__ import annotations

import json
from pathlib import Path

from flask.testing import FlaskClient

from gateway.schema import default_schema_path
from gateway.submit import b64
from keys import SigningKey
from linkage.app import create_app
from policies.audit import Checkpoint
from policies.audit_verify import verify_log
from policies.canonical import canonical_json
from tests.oauth_clients import authority
from tests.policy_keys import example_trust
from tests.unit.test_linkage_app import Setup, auth, post_batch, setup, submission

__all__ = ["setup"]  # the module fixture, shared with test_linkage_app
SERVICE_KEY = SigningKey.generate()


def client_for(tmp_path: Path, setup: Setup, key: SigningKey | None = SERVICE_KEY) -> FlaskClient:
    app = create_app(
        f"sqlite:///{tmp_path / 'linkage.db'}",
        [str(setup.policy_path)],
        [str(default_schema_path())],
        auth=authority(setup.keys),
        trusted_dpo_keys=sorted(example_trust().trusted_dpo_keys),
        audit_log_path=str(tmp_path / "audit.jsonl"),
        service_key=key,
    )
    app.config["TEST_NODE_KEYS"] = setup.keys
    return app.test_client()


def entries(tmp_path: Path) -> list[dict[str, object]]:
    lines = (tmp_path / "audit.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


def test_uploads_are_recorded_and_answered_with_a_checkpoint(tmp_path: Path, setup: Setup) -> None:
    client = client_for(tmp_path, setup)
    sent = submission(setup, "police")
    answer = post_batch(client, sent)
    assert answer.status_code == 201
    checkpoint = Checkpoint.from_json(answer.get_json()["audit_checkpoint"])
    assert checkpoint.problem(frozenset({SERVICE_KEY.fingerprint})) is None
    again = post_batch(client, sent)
    assert again.status_code == 200
    (first, second) = [e for e in entries(tmp_path) if e["kind"] == "submission"]
    assert first["payload"] == {
        "outcome": "accepted",
        "status": 201,
        "problem": None,
        "source": "police",
        "epoch": 0,
        "records": len(setup.batches["police"]),
        "batch_id": sent.manifest["batch_id"],
        "bytes": len(sent.body),
    }
    assert second["payload"]["outcome"] == "already_stored"
    assert checkpoint.head == first["entry_hash"]


def test_a_refused_upload_records_only_what_the_service_knows(tmp_path: Path, setup: Setup) -> None:
    client = client_for(tmp_path, setup)
    claims = {"policy_id": "not-held", "source": "x" * 500, "epoch": "3", "batch_id": "b" * 900}
    headers = {
        "Content-Type": "application/vnd.placelink.clks",
        "Placelink-Manifest": b64(canonical_json(claims)),
        "Placelink-Signature": "AA",
        **auth(client, "police"),
    }
    assert client.post("/v1/batches", data=b"junk", headers=headers).status_code == 422
    (refused,) = entries(tmp_path)
    assert refused["policy_id"] is None
    assert refused["payload"] == {
        "outcome": "refused",
        "status": 422,
        "problem": "invalid-input",
        "source": None,
        "epoch": None,
        "records": None,
        "batch_id": None,
        "bytes": 4,
    }


def test_the_audit_endpoints_need_their_tokens(tmp_path: Path, setup: Setup) -> None:
    client = client_for(tmp_path, setup)
    post_batch(client, submission(setup, "health"))
    assert client.get("/v1/audit/checkpoints").status_code == 401
    listed = client.get("/v1/audit/checkpoints", headers=auth(client, "analyst")).get_json()
    assert listed["signer"] == SERVICE_KEY.fingerprint and len(listed["checkpoints"]) == 1
    assert client.get("/v1/audit/entries", headers=auth(client, "analyst")).status_code == 403
    export = client.get("/v1/audit/entries", headers=auth(client, "admin"))
    assert export.mimetype == "application/x-ndjson"
    lines = export.get_data(as_text=True).splitlines()
    verdict = verify_log(lines, trusted_keys=frozenset({SERVICE_KEY.fingerprint}))
    assert verdict.ok and verdict.checkpoints == 1 and verdict.entries == len(lines) > 2


def test_without_a_service_key_there_are_no_checkpoints(tmp_path: Path, setup: Setup) -> None:
    client = client_for(tmp_path, setup, key=None)
    answer = post_batch(client, submission(setup, "school"))
    assert answer.status_code == 201 and "audit_checkpoint" not in answer.get_json()
    problem = client.get("/v1/audit/checkpoints", headers=auth(client, "health"))
    assert problem.status_code == 500 and "PLACELINK_SERVICE_KEY" in problem.get_json()["detail"]
