"""Unit tests of the linkage service's domain layer on a real SQLite file: intake of signed
batches (linkage.intake), storage (linkage.storage) and linkage and hot-spots (linkage.service).

Batches are encoded by the real gateway under the example task-force policy, with node keys
enrolled at run time, and signed with :func:`gateway.submit.prepare_submission`. Time is
injected (``NOW``) so that freshness and the policy's dates are deterministic.
"""

from __future__ import annotations

import copy
import dataclasses
import datetime as dt
import hashlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy import func, select

import policies
from gateway.pipeline import context_for_policy, encode_csv
from gateway.pseudonyms import PseudonymMap
from gateway.schema import default_schema
from gateway.submit import Submission, b64, prepare_submission
from keys import LinkageSecret, SigningKey
from keys.errors import (
    AccessError,
    InputError,
    KeyMaterialError,
    PlacelinkError,
    PolicyError,
    StorageError,
)
from linkage.corpus import build_corpus
from linkage.disclosure import SUPPRESSED
from linkage.engine import LocalEngine
from linkage.hotspots import DEFAULT_MEASURES
from linkage.intake import CLKS_MEDIA_TYPE, IntakeResult, ReplayError, accept_batch
from linkage.service import LinkageService
from linkage.storage import BatchRow, MembershipRow, RecordRow, Store
from placelink.town import AGENCIES, generate_town, write_canonical_csv
from policies.approvals import check_approved
from policies.canonical import canonical_json
from policies.clks import EncodedBatch, FieldLayout
from policies.model import Policy, parse_policy
from tests.policy_keys import enrolled_document, example_dpo_keys, example_trust, sign_document

NOW = dt.datetime(2026, 6, 1, 12, 0, tzinfo=dt.UTC)
LATER = dt.datetime(2028, 3, 1, 12, 0, tzinfo=dt.UTC)  # after the example policy expires
HOUSING = "housing"  # the agency whose fresh batches the bad-upload table tampers with
EXAMPLE_POLICY = Path(policies.__file__).parent / "examples" / "task-force.yaml"

TEST_SECRET = LinkageSecret(hashlib.sha256(b"placelink linkage-service test secret").digest())


@dataclasses.dataclass(frozen=True)
class World:
    policy: Policy
    next_version: Policy  # the same policy, one version on
    keys: dict[str, SigningKey]
    stranger: SigningKey  # enrolled nowhere
    batches: dict[str, EncodedBatch]
    identifiers: frozenset[str]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    folder: Path = tmp_path_factory.mktemp("agencies")
    keys = {agency: SigningKey.generate() for agency in AGENCIES}
    document = enrolled_document(keys)
    policy = parse_policy(document)
    check_approved(policy, trust=example_trust())  # signed by every required DPO
    assert policy.linkage_schema == default_schema().sha256
    later = copy.deepcopy(document)
    later["version"] = "1.1"
    later = sign_document(later, example_dpo_keys().values())
    context = context_for_policy(policy, default_schema(), epoch=0, today=NOW.date())
    town = generate_town(seed=5, people=300, areas=2)
    # a fixed TEST secret: linkage figures move a little from one random secret to another,
    # and assertions on them (tests/unit/test_linkage_incremental.py) must not flicker
    secret, batches = TEST_SECRET, {}
    for agency in AGENCIES:
        path = folder / f"{agency}.csv"
        write_canonical_csv(town.canonical_rows[agency], path)
        result = encode_csv(
            path, secret=secret, context=context, pseudonyms=PseudonymMap(), today=NOW.date()
        )
        batches[agency] = result.batch
    identifiers = frozenset(
        row[column]
        for rows in town.canonical_rows.values()
        for row in rows
        for column in ("given_name", "family_name", "postcode", "nhs_number")
        if len(row[column]) >= 4
    )
    return World(policy, parse_policy(later), keys, SigningKey.generate(), batches, identifiers)


@pytest.fixture
def service(database_url: str, world: World) -> Iterator[LinkageService]:
    """The service on SQLite and on PostgreSQL (see tests/conftest.py)."""
    created = LinkageService.create(database_url, [world.policy], [default_schema()])
    yield created
    created.store.engine.dispose()


@dataclasses.dataclass(frozen=True)
class Upload:
    """What an HTTP upload hands to intake."""

    body: bytes
    manifest_b64: str | None
    signature_b64: str | None
    content_type: str | None = CLKS_MEDIA_TYPE
    now: dt.datetime = NOW


def submission(
    world: World,
    agency: str = "police",
    *,
    batch: EncodedBatch | None = None,
    source: str | None = None,
    key: SigningKey | None = None,
    now: dt.datetime = NOW,
) -> Submission:
    return prepare_submission(
        batch or world.batches[agency],
        source=source or agency,
        policy_hash=world.policy.policy_hash,
        node_key=key or world.keys[agency],
        now=now,
    )


def upload_of(sub: Submission, **changes: Any) -> Upload:
    headers = sub.headers()
    upload = Upload(sub.body, headers["Placelink-Manifest"], headers["Placelink-Signature"])
    return dataclasses.replace(upload, **changes)


def resigned(sub: Submission, key: SigningKey, *, drop: str = "", **changes: Any) -> Upload:
    """The submission with its manifest changed and signed again by ``key``."""
    manifest = {k: v for k, v in {**sub.manifest, **changes}.items() if k != drop}
    signed = canonical_json(manifest)
    return Upload(sub.body, b64(signed), b64(key.sign(signed)))


def send(service: LinkageService, upload: Upload) -> IntakeResult:
    return accept_batch(
        store=service.store,
        policies=service.policies,
        schemas=service.schemas,
        content_type=upload.content_type,
        body=upload.body,
        manifest_b64=upload.manifest_b64,
        signature_b64=upload.signature_b64,
        now=upload.now,
    )


def row_counts(store: Store) -> tuple[int, int]:
    with store.engine.connect() as connection:
        batches = connection.scalar(select(func.count()).select_from(BatchRow))
        records = connection.scalar(select(func.count()).select_from(RecordRow))
    return int(batches or 0), int(records or 0)


def with_extra_attribute(batch: EncodedBatch, name: str) -> EncodedBatch:
    return dataclasses.replace(
        batch,
        attribute_names=(*batch.attribute_names, name),
        attributes=[[*row, "x"] for row in batch.attributes],
    )


def with_short_field(batch: EncodedBatch, name: str) -> EncodedBatch:
    """A field the policy names, encoded narrower than the schema declares."""
    values = {**batch.values, name: batch.values[name][:, :8]}
    fields = tuple(
        FieldLayout(f.name, f.encoding, 8) if f.name == name else f for f in batch.fields
    )
    return dataclasses.replace(batch, fields=fields, values=values)


def with_extra_field(batch: EncodedBatch, name: str) -> EncodedBatch:
    present = np.hstack([batch.present, np.zeros((len(batch), 1), dtype=bool)])
    values = {**batch.values, name: np.zeros((len(batch), 16), dtype=np.uint8)}
    fields = (*batch.fields, FieldLayout(name, "token", 16))
    return dataclasses.replace(batch, fields=fields, present=present, values=values)


Case = Callable[[World, Submission], Upload]


def housing(world: World) -> Submission:
    return submission(world, HOUSING)


def body_altered(world: World, _: Submission) -> Upload:
    sub = housing(world)
    body = bytearray(sub.body)
    body[len(body) // 2] ^= 0x01
    return upload_of(sub, body=bytes(body))


def body_truncated(world: World, _: Submission) -> Upload:
    sub = housing(world)
    return upload_of(sub, body=sub.body[: len(sub.body) // 2])


def signed_body_not_clks(world: World, _: Submission) -> Upload:
    body = b"record_id,given_name\n1,Jane\n"
    sub = dataclasses.replace(housing(world), body=body)
    return resigned(sub, world.keys[HOUSING], body_sha256=hashlib.sha256(body).hexdigest())


def body_of_another_version(world: World, _: Submission) -> Upload:
    batch = dataclasses.replace(world.batches[HOUSING], policy_version="0.9")
    return resigned(
        submission(world, HOUSING, batch=batch), world.keys[HOUSING], policy_version="1.0"
    )


def of_batch(change: Callable[[EncodedBatch], EncodedBatch]) -> Case:
    return lambda w, _: upload_of(submission(w, HOUSING, batch=change(w.batches[HOUSING])))


BAD_UPLOADS: list[tuple[str, Case, type[PlacelinkError]]] = [
    (
        "wrong-content-type",
        lambda w, _: upload_of(housing(w), content_type="application/octet-stream"),
        InputError,
    ),
    ("no-content-type", lambda w, _: upload_of(housing(w), content_type=None), InputError),
    ("missing-manifest", lambda w, _: upload_of(housing(w), manifest_b64=None), InputError),
    ("missing-signature", lambda w, _: upload_of(housing(w), signature_b64=None), InputError),
    ("bad-base64", lambda w, _: upload_of(housing(w), manifest_b64="%%%not base64%%%"), InputError),
    (
        "manifest-not-json",
        lambda w, _: upload_of(housing(w), manifest_b64=b64(b"\xff")),
        InputError,
    ),
    ("manifest-a-list", lambda w, _: upload_of(housing(w), manifest_b64=b64(b"[1]")), InputError),
    (
        "manifest-record-count-not-a-number",
        lambda w, _: resigned(housing(w), w.keys[HOUSING], record_count="many"),
        InputError,
    ),
    (
        "manifest-batch-id-too-long",
        lambda w, _: resigned(housing(w), w.keys[HOUSING], batch_id="b" * 37),
        InputError,
    ),
    (
        "manifest-missing-nonce",
        lambda w, _: resigned(housing(w), w.keys[HOUSING], drop="nonce"),
        InputError,
    ),
    (
        "manifest-missing-body-sha256",
        lambda w, _: resigned(housing(w), w.keys[HOUSING], drop="body_sha256"),
        InputError,
    ),
    (
        "signed-by-another-key",
        lambda w, _: resigned(housing(w), w.keys["police"]),
        KeyMaterialError,
    ),
    (
        "signature-of-another-manifest",
        lambda w, base: upload_of(housing(w), signature_b64=base.headers()["Placelink-Signature"]),
        KeyMaterialError,
    ),
    (
        "node-key-not-hex",
        lambda w, _: resigned(housing(w), w.keys[HOUSING], node_key="not-hex"),
        KeyMaterialError,
    ),
    ("body-altered-after-signing", body_altered, InputError),
    ("body-truncated", body_truncated, InputError),
    ("signed-body-not-clks", signed_body_not_clks, InputError),
    (
        "manifest-record-count-disagrees",
        lambda w, _: resigned(
            housing(w), w.keys[HOUSING], record_count=len(w.batches[HOUSING]) + 1
        ),
        InputError,
    ),
    (
        "manifest-epoch-disagrees",
        lambda w, _: resigned(housing(w), w.keys[HOUSING], epoch=1),
        InputError,
    ),
    ("body-made-under-another-policy-version", body_of_another_version, InputError),
    (
        "unregistered-policy",
        lambda w, _: resigned(housing(w), w.keys[HOUSING], policy_id="another-policy"),
        PolicyError,
    ),
    (
        "policy-hash-of-another-version",
        lambda w, _: resigned(housing(w), w.keys[HOUSING], policy_hash=w.next_version.policy_hash),
        PolicyError,
    ),
    (
        "policy-version-label-of-another-version",
        lambda w, _: resigned(housing(w), w.keys[HOUSING], policy_version="1.1"),
        PolicyError,
    ),
    (
        "policy-no-longer-in-force",
        lambda w, _: upload_of(submission(w, HOUSING, now=LATER), now=LATER),
        PolicyError,
    ),
    (
        "node-key-not-a-party",
        lambda w, _: upload_of(submission(w, HOUSING, key=w.stranger)),
        AccessError,
    ),
    (
        "party-a-claims-source-b",
        lambda w, _: upload_of(submission(w, "police", source=HOUSING)),
        AccessError,
    ),
    (
        "schema-hash-not-the-policy-pin",
        of_batch(lambda b: dataclasses.replace(b, schema_hash="0" * 64)),
        PolicyError,
    ),
    (
        "attribute-not-released",
        of_batch(lambda b: with_extra_attribute(b, "ethnicity")),
        PolicyError,
    ),
    ("field-not-encodable", of_batch(lambda b: with_extra_field(b, "phone")), PolicyError),
    (
        "field-narrower-than-the-schema",
        of_batch(lambda b: with_short_field(b, "given_name")),
        PolicyError,
    ),
    (
        "stale-created-at",
        lambda w, _: upload_of(submission(w, HOUSING, now=NOW - dt.timedelta(minutes=11))),
        ReplayError,
    ),
    (
        "future-created-at",
        lambda w, _: upload_of(submission(w, HOUSING, now=NOW + dt.timedelta(minutes=11))),
        ReplayError,
    ),
    (
        "created-at-without-timezone",
        lambda w, _: resigned(housing(w), w.keys[HOUSING], created_at="2026-06-01T12:00:00"),
        ReplayError,
    ),
    (
        "created-at-not-a-time",
        lambda w, _: resigned(housing(w), w.keys[HOUSING], created_at="yesterday"),
        InputError,
    ),
    (
        "reused-nonce-new-batch-id",
        lambda w, base: resigned(housing(w), w.keys[HOUSING], nonce=base.manifest["nonce"]),
        ReplayError,
    ),
    (
        "same-batch-id-other-body",
        lambda w, base: resigned(housing(w), w.keys[HOUSING], batch_id=base.manifest["batch_id"]),
        ReplayError,
    ),
    (
        "same-batch-id-same-body-new-nonce",
        lambda w, base: resigned(base, w.keys["police"], nonce="f" * 32),
        ReplayError,
    ),
]


@pytest.mark.parametrize(
    ("make", "error"),
    [pytest.param(make, error, id=name) for name, make, error in BAD_UPLOADS],
)
def test_bad_upload_is_refused_whole(
    service: LinkageService, world: World, make: Case, error: type[PlacelinkError]
) -> None:
    baseline = submission(world, "police")
    assert not send(service, upload_of(baseline)).already_stored
    before = row_counts(service.store)
    assert before == (1, len(world.batches["police"]))
    upload = make(world, baseline)
    with pytest.raises(PlacelinkError) as caught:
        send(service, upload)
    assert caught.type is error, caught.value.diagnostics()
    assert caught.value.fix, "every refusal names a fix"
    message = caught.value.diagnostics()
    assert not any(value in message for value in world.identifiers)
    assert row_counts(service.store) == before


def test_the_same_submission_twice_is_stored_once(service: LinkageService, world: World) -> None:
    upload = upload_of(submission(world, "health"))
    first = send(service, upload)
    after_first = row_counts(service.store)
    second = send(service, dataclasses.replace(upload, now=NOW + dt.timedelta(minutes=1)))
    assert (first.already_stored, second.already_stored) == (False, True)
    assert first.batch_id == second.batch_id
    assert first.records == second.records == len(world.batches["health"])
    assert row_counts(service.store) == after_first == (1, len(world.batches["health"]))


def test_a_valid_batch_stores_one_record_row_per_record(
    service: LinkageService, world: World
) -> None:
    sub = submission(world, "school")
    result = send(service, upload_of(sub))
    batch = world.batches["school"]
    assert result == IntakeResult(sub.manifest["batch_id"], len(batch), already_stored=False)
    with service.store.engine.connect() as connection:
        stored = connection.execute(
            select(RecordRow.pseudonym, RecordRow.attributes, RecordRow.source)
            .where(RecordRow.batch_id == result.batch_id)
            .order_by(RecordRow.id)
        ).all()
    assert [row.pseudonym for row in stored] == [batch.pseudonym_hex(i) for i in range(len(batch))]
    assert {row.source for row in stored} == {"school"}
    names = batch.attribute_names
    assert set(names) == {"area", "event_month"}
    assert [row.attributes for row in stored] == [
        dict(zip(names, values, strict=True)) for values in batch.attributes
    ]
    row = service.store.find_batch(result.batch_id)
    assert row is not None
    assert (row.record_count, row.nonce) == (len(batch), sub.manifest["nonce"])
    assert service.store.batch_body(result.batch_id) == sub.body


def test_a_failed_store_leaves_nothing_behind(service: LinkageService, world: World) -> None:
    baseline = submission(world, "police")
    send(service, upload_of(baseline))
    before = row_counts(service.store)
    clash = {**submission(world, HOUSING).manifest, "nonce": baseline.manifest["nonce"]}
    with pytest.raises(StorageError):
        service.store.store_batch(clash, [world.batches[HOUSING]])
    assert row_counts(service.store) == before


@pytest.fixture
def linked(service: LinkageService, world: World) -> LinkageService:
    for agency in AGENCIES:
        send(service, upload_of(submission(world, agency)))
    return service


def test_run_linkage_links_every_stored_record(linked: LinkageService, world: World) -> None:
    total = sum(len(b) for b in world.batches.values())
    summary = linked.run_linkage(world.policy.policy_id)
    assert summary["records"] == total
    assert sorted(summary["sources"]) == sorted(AGENCIES)
    assert 0 < summary["entities"] < total
    assert sum(int(s) * n for s, n in summary["cluster_sizes"].items()) == total
    assert linked.run_linkage(world.policy.policy_id) == summary
    with linked.store.engine.connect() as connection:
        memberships = connection.scalar(select(func.count()).select_from(MembershipRow))
    assert memberships == total  # the second run replaced the first


def test_stored_memberships_match_an_in_memory_link(linked: LinkageService, world: World) -> None:
    linked.run_linkage(world.policy.policy_id)
    corpus = build_corpus(
        [(agency, world.batches[agency]) for agency in AGENCIES], default_schema()
    )
    result = LocalEngine().link(corpus)
    expected = {corpus.member_key(r): e for r, e in enumerate(result.entity_ids)}
    for agency in AGENCIES:
        links = linked.entity_links(world.policy.policy_id, agency)
        assert len(links) == len(world.batches[agency])
        assert {f"{agency}:{p}": e for p, e in links} == {
            k: v for k, v in expected.items() if k.startswith(f"{agency}:")
        }


def test_hotspots_publish_only_disclosure_controlled_counts(
    linked: LinkageService, world: World
) -> None:
    linked.run_linkage(world.policy.policy_id)
    rows = linked.hotspots(world.policy.policy_id, DEFAULT_MEASURES)
    assert rows, "the town's records carry areas"
    shown = [row[m.name] for row in rows for m in DEFAULT_MEASURES]
    for value in shown:
        assert value in (0, SUPPRESSED) or (
            isinstance(value, int) and value >= 10 and value % 5 == 0
        )
    assert any(isinstance(v, int) and v >= 10 for v in shown), "expected some published cell"
    areas = [str(row["area"]) for row in rows]
    assert areas == sorted(areas)
    assert all(len(area.split()) == 2 for area in areas)  # postcode sectors, never postcodes


def test_hotspots_before_any_link_run_are_empty(linked: LinkageService, world: World) -> None:
    assert linked.hotspots(world.policy.policy_id, DEFAULT_MEASURES) == []


@pytest.mark.parametrize("by", ["postcode", "date_of_birth", "ethnicity", ""])
def test_grouping_by_an_unreleased_attribute_is_refused(
    linked: LinkageService, world: World, by: str
) -> None:
    linked.run_linkage(world.policy.policy_id)
    with pytest.raises(PolicyError):
        linked.hotspots(world.policy.policy_id, DEFAULT_MEASURES, by=by)


@pytest.mark.parametrize("source", ["linkage", "analyst"])
def test_entity_links_are_refused_to_a_non_provider(
    linked: LinkageService, world: World, source: str
) -> None:
    linked.run_linkage(world.policy.policy_id)
    with pytest.raises(PolicyError):
        linked.entity_links(world.policy.policy_id, source)


def test_unknown_policy_and_empty_store_are_refused(service: LinkageService, world: World) -> None:
    with pytest.raises(PolicyError):
        service.run_linkage("no-such-policy")
    with pytest.raises(PolicyError):
        service.hotspots("no-such-policy", DEFAULT_MEASURES)
    with pytest.raises(InputError):
        service.run_linkage(world.policy.policy_id)
