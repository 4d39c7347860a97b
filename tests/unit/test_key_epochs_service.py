"""Key epochs and revocation at the linkage service (linkage.epochs, linkage.intake,
linkage.storage), on SQLite and PostgreSQL: a link run reads one epoch only; the old epoch is
kept until every provider has re-published under the new one, then deleted and refused; a
revoked node key's uploads stop at once, and a store that cannot say refuses (fail closed)."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select, text

import policies
from gateway.pipeline import context_for_policy, encode_csv
from gateway.pseudonyms import PseudonymMap
from gateway.schema import default_schema, default_schema_path
from gateway.submit import prepare_submission
from keys import LinkageSecret, SigningKey, new_secret, rotated
from keys.errors import AccessError, InputError, PolicyError, StorageError
from linkage.app import create_app
from linkage.epochs import complete_epochs, epoch_to_link
from linkage.intake import CLKS_MEDIA_TYPE, IntakeResult, accept_batch
from linkage.service import LinkageService
from linkage.storage import BatchRow, RecordRow
from placelink.town import generate_town, write_canonical_csv
from policies.clks import EncodedBatch
from policies.model import Policy, dump_policy, parse_policy
from tests.oauth_clients import authority, bearer, flask_token
from tests.policy_keys import EXAMPLE_DPOS, example_dpo_keys, example_trust, sign_document

NOW = dt.datetime(2026, 6, 1, 12, 0, tzinfo=dt.UTC)
PROVIDERS = ("police", "health")
EXAMPLE_POLICY = Path(policies.__file__).parent / "examples" / "task-force.yaml"


@dataclasses.dataclass(frozen=True)
class Epochs:
    policy: Policy
    document: dict[str, Any]
    keys: dict[str, SigningKey]
    batches: dict[tuple[str, int], EncodedBatch]  # (agency, epoch)


def _document(keys: dict[str, SigningKey]) -> dict[str, Any]:
    """The example policy with two providers enrolled and the others left out."""
    document: dict[str, Any] = yaml.safe_load(EXAMPLE_POLICY.read_text(encoding="utf-8"))
    for party in document["parties"]:
        if party["id"] in keys:
            party["node_key"] = keys[party["id"]].fingerprint
    document["parties"] = [
        p for p in document["parties"] if p["role"] != "provider" or p["id"] in keys
    ]
    dpo_keys = example_dpo_keys()
    signers = {EXAMPLE_DPOS[p["id"]] for p in document["parties"]}
    return sign_document(document, [dpo_keys[name] for name in sorted(signers)])


@pytest.fixture(scope="module")
def epochs(tmp_path_factory: pytest.TempPathFactory) -> Epochs:
    folder = tmp_path_factory.mktemp("epochs")
    keys = {agency: SigningKey.generate() for agency in PROVIDERS}
    document = _document(keys)
    policy = parse_policy(document)
    town = generate_town(seed=11, people=200, areas=2)
    first = new_secret()
    secrets: dict[int, LinkageSecret] = {0: first, 1: rotated(first)}
    batches = {}
    for agency in PROVIDERS:
        path = folder / f"{agency}.csv"
        write_canonical_csv(town.canonical_rows[agency], path)
        for epoch, secret in secrets.items():
            context = context_for_policy(policy, default_schema(), epoch=epoch, today=NOW.date())
            batches[agency, epoch] = encode_csv(
                path, secret=secret, context=context, pseudonyms=PseudonymMap(), today=NOW.date()
            ).batch
    return Epochs(policy, document, keys, batches)


@pytest.fixture
def service(database_url: str, epochs: Epochs) -> Iterator[LinkageService]:
    created = LinkageService.create(database_url, [epochs.policy], [default_schema()])
    yield created
    created.store.engine.dispose()


def send(service: LinkageService, epochs: Epochs, agency: str, epoch: int) -> IntakeResult:
    sub = prepare_submission(
        epochs.batches[agency, epoch],
        source=agency,
        policy_hash=epochs.policy.policy_hash,
        node_key=epochs.keys[agency],
        now=NOW,
    )
    headers = sub.headers()
    return accept_batch(
        store=service.store,
        policies=service.policies,
        schemas=service.schemas,
        content_type=CLKS_MEDIA_TYPE,
        body=sub.body,
        manifest_b64=headers["Placelink-Manifest"],
        signature_b64=headers["Placelink-Signature"],
        now=NOW,
    )


def stored_epochs(service: LinkageService) -> list[int]:
    with service.store.engine.connect() as connection:
        return sorted(connection.scalars(select(BatchRow.epoch)).all())


def record_count(service: LinkageService) -> int:
    with service.store.engine.connect() as connection:
        return int(connection.scalar(select(func.count()).select_from(RecordRow)) or 0)


def test_rotation_links_one_epoch_at_a_time_and_deletes_the_old_at_the_switch(
    service: LinkageService, epochs: Epochs
) -> None:
    policy_id = epochs.policy.policy_id
    per_epoch = sum(len(epochs.batches[a, 0]) for a in PROVIDERS)
    for agency in PROVIDERS:
        send(service, epochs, agency, 0)
    first = service.run_linkage(policy_id)
    assert (first["epoch"], first["records"]) == (0, per_epoch)
    assert first["multi_agency_entities"] > 0, "the two providers share people"

    send(service, epochs, "police", 1)  # one provider has re-published: keep linking epoch 0
    during = service.run_linkage(policy_id)
    assert (during["epoch"], during["records"]) == (0, per_epoch), "epochs never mixed"
    assert "retired_batches" not in during
    assert stored_epochs(service) == [0, 0, 1]
    only_new = service.run_linkage(policy_id, epoch=1)  # asked for: epoch 1 alone
    assert (only_new["records"], only_new["multi_agency_entities"]) == (
        len(epochs.batches["police", 1]),
        0,
    )
    assert stored_epochs(service) == [0, 0, 1], "nothing is retired before every party switched"

    send(service, epochs, "health", 1)  # every provider has re-published: the switch
    switched = service.run_linkage(policy_id)
    assert (switched["epoch"], switched["records"]) == (1, per_epoch)
    assert switched["retired_batches"] == 2
    # the same people under a new secret: the links agree up to the encoding's noise (the
    # engine re-estimates its model from each epoch's own encodings)
    assert abs(switched["multi_agency_entities"] - first["multi_agency_entities"]) <= 2
    assert stored_epochs(service) == [1, 1]
    assert record_count(service) == per_epoch
    assert service.store.key_state.epoch_floor(policy_id) == 1


def test_after_the_switch_old_epoch_uploads_and_link_runs_are_refused(
    service: LinkageService, epochs: Epochs
) -> None:
    for epoch in (0, 1):
        for agency in PROVIDERS:
            send(service, epochs, agency, epoch)
    assert service.run_linkage(epochs.policy.policy_id)["epoch"] == 1
    with pytest.raises(PolicyError, match="retired key epoch"):
        send(service, epochs, "police", 0)
    with pytest.raises(PolicyError, match="was retired"):
        service.run_linkage(epochs.policy.policy_id, epoch=0)
    assert stored_epochs(service) == [1, 1]


def test_a_revoked_node_key_is_refused_at_once_and_others_are_not(
    service: LinkageService, epochs: Epochs, database_url: str
) -> None:
    send(service, epochs, "police", 0)
    police = epochs.keys["police"].fingerprint
    first = service.store.key_state.revoke_key(police, now=NOW)
    again = service.store.key_state.revoke_key(police, now=NOW + dt.timedelta(hours=1))
    assert first == again
    other_worker = LinkageService.create(database_url, [epochs.policy], [default_schema()])
    try:
        with pytest.raises(AccessError, match="revoked"):
            send(other_worker, epochs, "police", 1)
        assert send(other_worker, epochs, "health", 0).records == len(epochs.batches["health", 0])
    finally:
        other_worker.store.engine.dispose()
    assert [key for key, _ in service.store.key_state.revoked_keys()] == [police]


def test_intake_fails_closed_when_the_revocation_list_cannot_be_read(
    service: LinkageService, epochs: Epochs
) -> None:
    with service.store.engine.begin() as connection:
        connection.execute(text("DROP TABLE revoked_keys"))
    with pytest.raises(StorageError):
        send(service, epochs, "health", 0)
    assert stored_epochs(service) == []


def _admin_client(tmp_path: Path, epochs: Epochs) -> Any:
    policy_path = tmp_path / "policy.yaml"
    dump_policy(epochs.document, policy_path)
    app = create_app(
        f"sqlite:///{tmp_path / 'linkage.db'}",
        [str(policy_path)],
        [str(default_schema_path())],
        auth=authority({}),
        trusted_dpo_keys=sorted(example_trust().trusted_dpo_keys),
    )
    return app.test_client()


@pytest.mark.parametrize(
    ("sender", "body", "status"),
    [
        ("", None, 401),
        ("analyst", None, 403),
        ("admin", {"node_key": "not-a-fingerprint"}, 422),
        ("admin", {"node_key": "ed25519:" + "0" * 63}, 422),
        ("admin", None, 201),
    ],
)
def test_the_revocation_endpoint_needs_the_admin_scope(
    tmp_path: Path, epochs: Epochs, sender: str, body: dict[str, str] | None, status: int
) -> None:
    client = _admin_client(tmp_path, epochs)
    police = epochs.keys["police"].fingerprint
    headers = bearer(flask_token(client, sender)) if sender else {}
    response = client.post("/v1/revocations", json=body or {"node_key": police}, headers=headers)
    assert response.status_code == status
    if status == 201:
        listed = client.get("/v1/revocations", headers=headers)
        assert [r["node_key"] for r in listed.get_json()["revoked"]] == [police]
        assert client.get("/v1/revocations").status_code == 401
    else:
        assert response.content_type == "application/problem+json"


def test_link_run_endpoint_takes_an_optional_integer_epoch(tmp_path: Path, epochs: Epochs) -> None:
    client = _admin_client(tmp_path, epochs)
    auth = bearer(flask_token(client, "admin"))
    path = f"/v1/policies/{epochs.policy.policy_id}/link-runs"
    assert client.post(path, json={"epoch": "1"}, headers=auth).status_code == 422
    assert client.post(path, json={"epoch": True}, headers=auth).status_code == 422
    assert client.post(path, json={"epoch": 0}, headers=auth).status_code == 422  # nothing stored


@settings(max_examples=200, deadline=None)
@given(
    stored=st.dictionaries(
        st.integers(0, 6), st.sets(st.sampled_from(["police", "health", "stranger"]), min_size=1)
    ).filter(bool),
    floor=st.integers(0, 6),
)
def test_the_epoch_to_link_is_the_newest_complete_one_and_never_retired(
    epochs: Epochs, stored: dict[int, set[str]], floor: int
) -> None:
    held = [e for e in stored if e >= floor]
    if not held:
        with pytest.raises(InputError):
            epoch_to_link(epochs.policy, stored, floor)
        return
    chosen = epoch_to_link(epochs.policy, stored, floor)
    assert chosen >= floor
    complete = [e for e in held if {"police", "health"} <= stored[e]]
    assert chosen == (max(complete) if complete else min(held))
    assert complete_epochs(epochs.policy, stored) == sorted(
        e for e in stored if {"police", "health"} <= stored[e]
    )
