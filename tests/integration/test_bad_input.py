"""No bad upload, expired token or curious caller may lose or leak data: ONE table of bad
requests against the linkage service, each answered with a problem+json naming the problem
(status, stable ``type``, a detail or fix) and leaving every stored table exactly as it was.

Each row runs on SQLite and PostgreSQL (as the ``database_url`` fixture does, but one service
per database for the whole table) against a service that already holds data (a stored batch
and a link run), so "unchanged" means something. The one deliberate write
a refusal makes is the query log's entry for a refused hot-spot query (the design's "every query
logged with who, what and the decision"): such a row names the table and the test checks that
exactly one row, a refusal, was added there and nothing else changed.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import MetaData, delete, insert, select
from sqlalchemy.engine import Engine

from gateway.pipeline import context_for_policy, encode_csv
from gateway.pseudonyms import PseudonymMap
from gateway.schema import default_schema, default_schema_path
from gateway.submit import Submission, b64, prepare_submission
from keys import SigningKey, new_secret
from linkage.app import PROBLEM_BASE, create_app
from linkage.intake import MAX_BODY_BYTES
from linkage.service import LinkageService
from linkage.tables import EpochFloorRow
from placelink.town import generate_town, write_canonical_csv
from policies.canonical import canonical_json
from policies.clks import EncodedBatch
from policies.model import Policy, dump_policy, load_policy
from tests.conftest import POSTGRES_URL_VARIABLE, _empty_postgres, require
from tests.oauth_clients import Clock, authority, flask_token, gateway_client_id
from tests.policy_keys import enrolled_document, example_trust

ANALYST = "analyst"  # OAuth clients of tests/oauth_clients.py: query:hotspots
ADMIN = "admin"  # admin (link runs, revocations)
POLICY_ID = "seabrook-task-force"
AGENCIES = ("police", "health", "school")


@dataclasses.dataclass(frozen=True)
class World:
    policy_path: Path
    policy: Policy
    keys: dict[str, SigningKey]
    batches: dict[str, EncodedBatch]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    folder = tmp_path_factory.mktemp("bad-input")
    keys = {agency: SigningKey.generate() for agency in AGENCIES}
    today = dt.datetime.now(dt.UTC).date()
    document = enrolled_document(keys, today=today)
    policy_path = folder / "policy.yaml"
    dump_policy(document, policy_path)
    policy = load_policy(policy_path)
    context = context_for_policy(policy, default_schema(), epoch=0, today=today)
    town = generate_town(seed=5, people=120, areas=2)
    secret, batches = new_secret(), {}
    for agency in AGENCIES:
        path = folder / f"{agency}.csv"
        write_canonical_csv(town.canonical_rows[agency], path)
        result = encode_csv(path, secret=secret, context=context, pseudonyms=PseudonymMap())
        batches[agency] = result.batch
    return World(policy_path, policy, keys, batches)


@dataclasses.dataclass
class Live:
    """A service holding data: the police batch stored and linked; health not yet sent."""

    world: World
    app: Flask
    client: FlaskClient
    stored: Submission
    clock: Clock
    tokens: dict[str, str] = dataclasses.field(default_factory=dict)

    def token(self, who: str) -> str:
        """A real access token of ``who`` (an agency's gateway, or a client id), from the app's
        own token endpoint, kept for the whole table."""
        if who not in self.tokens:
            key = self.world.keys.get(who)
            client_id = gateway_client_id(who) if key else who
            self.tokens[who] = flask_token(self.client, client_id, key)
        return self.tokens[who]

    @property
    def service(self) -> LinkageService:
        service: LinkageService = self.app.extensions["placelink"]
        return service

    def submission(self, agency: str = "health", **changes: Any) -> Submission:
        batch = self.world.batches[agency]
        if changes:
            batch = dataclasses.replace(batch, **changes)
        return prepare_submission(
            batch,
            source=agency,
            policy_hash=self.world.policy.policy_hash,
            node_key=self.world.keys[agency],
        )


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def live(request: pytest.FixtureRequest, world: World) -> Iterator[Live]:
    """One service per database for the whole table (each row leaves the data as it found
    it, which is what the table checks; a row that sets a stage undoes it)."""
    if request.param == "sqlite":
        url = f"sqlite:///{world.policy_path.parent / 'linkage.db'}"
    else:
        url = os.environ.get(POSTGRES_URL_VARIABLE, "")
        require(bool(url), f"PostgreSQL ({POSTGRES_URL_VARIABLE})")
        _empty_postgres(url)
    clock = Clock()
    app = create_app(
        url,
        [str(world.policy_path)],
        [str(default_schema_path())],
        auth=authority(world.keys, clock=clock),
        trusted_dpo_keys=sorted(example_trust().trusted_dpo_keys),
    )
    client = app.test_client()
    stored = prepare_submission(
        world.batches["police"],
        source="police",
        policy_hash=world.policy.policy_hash,
        node_key=world.keys["police"],
    )
    live = Live(world, app, client, stored, clock)
    assert _send(live, Request.upload(stored)).status_code == 201
    run = _send(live, Request.api("POST", f"/v1/policies/{POLICY_ID}/link-runs", who=ADMIN))
    assert run.status_code == 201, run.get_data(as_text=True)
    try:
        yield live
    finally:
        app.extensions["placelink"].store.engine.dispose()
        if request.param == "postgresql":
            _empty_postgres(url)


# --- what is sent -------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Request:
    """What is sent, and by whom: ``who`` names the caller whose real token goes with it (an
    agency's gateway or a client id), ``token`` a raw bearer token instead; neither: none."""

    method: str
    path: str
    body: bytes = b""
    headers: dict[str, str] = dataclasses.field(default_factory=dict)
    who: str | None = None
    token: str | None = None

    @classmethod
    def upload(
        cls, sub: Submission, body: bytes | None = None, *, who: str | None = "", **headers: str
    ) -> Request:
        """An upload by the submission's own gateway (``who=None``: with no token at all)."""
        sender = str(sub.manifest["source"]) if who == "" else who
        merged = {**sub.headers(), **headers}
        return cls("POST", "/v1/batches", sub.body if body is None else body, merged, sender)

    @classmethod
    def api(cls, method: str, path: str, body: bytes = b"", *, who: str | None = ANALYST,
            token: str | None = None) -> Request:  # fmt: skip
        return cls(method, path, body, {"Content-Type": "application/json"}, who, token)


def _send(live: Live, request: Request) -> Any:
    headers = dict(request.headers)
    token = request.token or (live.token(request.who) if request.who else None)
    if token:
        headers["Authorization"] = f"Bearer {token}"
    return live.client.open(request.path, method=request.method, data=request.body,
                            headers=headers)  # fmt: skip


def resigned(sub: Submission, key: SigningKey, **changes: Any) -> Request:
    """The submission's body under a manifest changed by ``changes``, signed by ``key``."""
    manifest = canonical_json({**sub.manifest, **changes})
    headers = {"Placelink-Manifest": b64(manifest), "Placelink-Signature": b64(key.sign(manifest))}
    return Request.upload(sub, **headers)


def signed_body(live: Live, body: bytes, **changes: Any) -> Request:
    """An honest health node signing whatever ``body`` is (so the refusal is about the body)."""
    sub = live.submission()
    digest = hashlib.sha256(body).hexdigest()
    request = resigned(sub, live.world.keys["health"], body_sha256=digest, **changes)
    return dataclasses.replace(request, body=body)


def _hours_ago(hours: float) -> str:
    moment = dt.datetime.now(dt.UTC) - dt.timedelta(hours=hours)
    return moment.isoformat(timespec="seconds")


def _mutate_key(live: Live) -> Request:
    sub = live.submission()
    other = SigningKey.generate()  # enrolled in no policy
    return resigned(sub, other, node_key=other.public_raw.hex())


def _epoch_floor(live: Live, epoch: int) -> None:
    """Set the policy's oldest accepted epoch (as retire_epochs_before does, without deleting
    the stored epoch-0 batch that the other rows protect)."""
    with live.service.store.engine.begin() as connection:
        connection.execute(delete(EpochFloorRow).where(EpochFloorRow.policy_id == POLICY_ID))
        if epoch:
            connection.execute(insert(EpochFloorRow).values(policy_id=POLICY_ID, epoch=epoch))


def _retired_epoch(live: Live) -> Request:
    _epoch_floor(live, 1)  # epoch 0 is now retired
    return Request.upload(live.submission())


def _revoked_key(live: Live) -> Request:
    now = dt.datetime.now(dt.UTC)  # school's key: no other row sends as the school
    live.service.store.key_state.revoke_key(live.world.keys["school"].fingerprint, now=now)
    return Request.upload(live.submission("school"))


def _oversized(live: Live) -> Request:
    live.app.config["MAX_CONTENT_LENGTH"] = 1024  # the real limit is 512 MiB; same code path
    return Request.upload(live.submission())


def _expired_token(live: Live) -> Request:
    live.token(ANALYST)  # issued now ...
    live.clock.advance(7200)  # ... and presented two hours later
    return Request.api("POST", HOTSPOTS, b"{}")


def _undo_oversized(live: Live) -> None:
    live.app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES


def _leaky(live: Live) -> Request:
    batch = live.world.batches["health"]
    names = (*batch.attribute_names, "nhs_number")
    values = [[*row, "9434765919"] for row in batch.attributes]
    return Request.upload(live.submission(attribute_names=names, attributes=values))


Make = Callable[[Live], Request]


@dataclasses.dataclass(frozen=True)
class Case:
    id: str
    sent: str  # what is sent, in words
    make: Make
    status: int
    slug: str
    logged: str | None = None  # a table where the refusal itself is deliberately logged
    undo: Callable[[Live], None] | None = None  # a row that set a stage puts it back


HEALTH = "health"
LINK_RUNS = f"/v1/policies/{POLICY_ID}/link-runs"
HOTSPOTS = f"/v1/policies/{POLICY_ID}/hotspots"

CASES = [
    # (1) body, content type and size
    Case("wrong-content-type", "a valid batch labelled text/csv",
         lambda lv: Request.upload(lv.submission(), **{"Content-Type": "text/csv"}),
         422, "invalid-input"),
    Case("json-content-type", "a valid batch labelled application/json",
         lambda lv: Request.upload(lv.submission(), **{"Content-Type": "application/json"}),
         422, "invalid-input"),
    Case("oversized-body", "a batch over the body size limit (limit lowered to 1 KiB)",
         _oversized, 413, "too-large", undo=_undo_oversized),
    Case("malformed-body", "random bytes, honestly signed, as a .clks body",
         lambda lv: signed_body(lv, os.urandom(4096)), 422, "invalid-input"),
    Case("truncated-clks", "a .clks body cut in half, honestly signed",
         lambda lv: signed_body(lv, lv.submission().body[: len(lv.submission().body) // 2]),
         422, "invalid-input"),
    Case("truncated-in-transit", "a .clks body cut short after signing",
         lambda lv: Request.upload(lv.submission(), body=lv.submission().body[:-7]),
         422, "invalid-input"),
    Case("csv-body", "a CSV extract instead of a .clks body, honestly signed",
         lambda lv: signed_body(lv, b"record_id,given_name\n1,Ada\n"), 422, "invalid-input"),
    # (2) manifest
    Case("missing-manifest", "no Placelink-Manifest header",
         lambda lv: Request.upload(lv.submission(), **{"Placelink-Manifest": ""}),
         422, "invalid-input"),
    Case("missing-signature", "no Placelink-Signature header",
         lambda lv: Request.upload(lv.submission(), **{"Placelink-Signature": ""}),
         422, "invalid-input"),
    Case("manifest-not-json", "a manifest header that is not base64url JSON",
         lambda lv: Request.upload(lv.submission(), **{"Placelink-Manifest": "%%%not-b64"}),
         422, "invalid-input"),
    Case("manifest-lacks-key", "a signed manifest without its nonce",
         lambda lv: _without(lv, "nonce"), 422, "invalid-input"),
    # (3) signature and key
    Case("bad-signature", "a manifest signed by another node's key",
         lambda lv: resigned(lv.submission(), lv.world.keys["police"]), 401, "bad-signature"),
    Case("garbage-signature", "64 random bytes as the signature",
         lambda lv: Request.upload(lv.submission(),
                                   **{"Placelink-Signature": b64(os.urandom(64))}),
         401, "bad-signature"),
    Case("node-key-not-hex", "a manifest whose node_key is not a key",
         lambda lv: resigned(lv.submission(), lv.world.keys[HEALTH], node_key="zz"),
         401, "bad-signature"),
    Case("revoked-key", "a valid batch from a revoked node key", _revoked_key, 403, "forbidden"),
    # (4), (5) policy and party
    Case("unknown-policy", "a batch naming a policy the service does not hold (nor the token)",
         lambda lv: resigned(lv.submission(), lv.world.keys[HEALTH], policy_id="other-policy"),
         403, "forbidden"),
    Case("other-policy-version", "a batch bound to another version's hash",
         lambda lv: resigned(lv.submission(), lv.world.keys[HEALTH], policy_hash="0" * 64),
         403, "policy-refused"),
    Case("not-a-party", "a batch signed by a key no policy enrols",
         _mutate_key, 403, "forbidden"),
    Case("other-partys-source", "the health node claiming to be the police",
         lambda lv: resigned(lv.submission(), lv.world.keys[HEALTH], source="police"),
         403, "forbidden"),
    # (6), (7) body against manifest, schema and epoch
    Case("header-lies-record-count", "a manifest claiming one record more than the body holds",
         lambda lv: resigned(lv.submission(), lv.world.keys[HEALTH],
                             record_count=len(lv.world.batches[HEALTH]) + 1),
         422, "invalid-input"),
    Case("wrong-epoch", "a manifest naming epoch 1 over an epoch-0 body",
         lambda lv: resigned(lv.submission(), lv.world.keys[HEALTH], epoch=1),
         422, "invalid-input"),
    Case("wrong-schema-hash", "a batch encoded under another linkage schema's hash",
         lambda lv: Request.upload(lv.submission(schema_hash="ab" * 32)),
         403, "policy-refused"),
    # (8) what the policy releases, key epochs
    Case("unreleased-attribute", "a batch carrying an attribute the policy does not release",
         _leaky, 403, "policy-refused"),
    Case("retired-epoch", "a batch of a retired key epoch", _retired_epoch, 403, "policy-refused",
         undo=lambda lv: _epoch_floor(lv, 0)),
    # (9) freshness and replay
    Case("replay-other-content", "the stored batch's id over other content",
         lambda lv: resigned(lv.submission(), lv.world.keys[HEALTH],
                             batch_id=lv.stored.manifest["batch_id"]),
         409, "replay"),
    Case("replayed-nonce", "a new batch reusing a stored batch's nonce",
         lambda lv: resigned(lv.submission(), lv.world.keys[HEALTH],
                             nonce=lv.stored.manifest["nonce"]),
         409, "replay"),
    Case("stale-timestamp", "a batch signed an hour ago",
         lambda lv: resigned(lv.submission(), lv.world.keys[HEALTH], created_at=_hours_ago(1)),
         409, "replay"),
    Case("future-timestamp", "a batch dated an hour ahead",
         lambda lv: resigned(lv.submission(), lv.world.keys[HEALTH], created_at=_hours_ago(-1)),
         409, "replay"),
    Case("timestamp-not-iso", "a created_at that is not a time",
         lambda lv: resigned(lv.submission(), lv.world.keys[HEALTH], created_at="yesterday"),
         422, "invalid-input"),
    # tokens (OAuth2 client credentials: linkage/auth.py)
    Case("upload-without-token", "a valid batch with no Authorization header",
         lambda lv: Request.upload(lv.submission(), who=None), 401, "unauthenticated"),
    Case("missing-token", "a link run with no Authorization header",
         lambda lv: Request.api("POST", LINK_RUNS, who=None), 401, "unauthenticated"),
    Case("unknown-token", "a hot-spot query with a token the service never issued",
         lambda lv: Request.api("POST", HOTSPOTS, b"{}", who=None, token="never.issued.jwt"),
         401, "unauthenticated"),
    Case("expired-token", "a hot-spot query with a token 2 hours old",
         _expired_token, 401, "unauthenticated", undo=lambda lv: lv.clock.advance(-7200)),
    Case("wrong-scope-token", "a hot-spot query with a gateway's (submit) token",
         lambda lv: Request.api("POST", HOTSPOTS, b"{}", who=HEALTH), 403, "forbidden"),
    Case("analyst-token-on-admin", "a revocation with an analyst's token (wrong scope)",
         lambda lv: Request.api("POST", "/v1/revocations", who=ANALYST,
                                body=b'{"node_key": "ed25519:' + b"0" * 64 + b'"}'),
         403, "forbidden"),
    Case("upload-as-another-party", "the health gateway's token on the school's batch",
         lambda lv: Request.upload(lv.submission("school"), who=HEALTH), 403, "forbidden"),
    # JSON endpoints
    Case("link-run-not-json", "a link run whose body is not JSON",
         lambda lv: Request.api("POST", LINK_RUNS, b"{epoch: 1", who=ADMIN),
         422, "invalid-input"),
    Case("link-run-json-array", "a link run whose body is a JSON array",
         lambda lv: Request.api("POST", LINK_RUNS, b"[1]", who=ADMIN), 422, "invalid-input"),
    Case("hotspots-not-json", "a hot-spot query that is not JSON",
         lambda lv: Request.api("POST", HOTSPOTS, b"by=area"), 422, "invalid-input"),
    Case("revocation-not-json", "a revocation whose body is not JSON",
         lambda lv: Request.api("POST", "/v1/revocations", b"node_key", who=ADMIN),
         422, "invalid-input"),
    Case("hotspots-forbidden-grouping", "a hot-spot query grouped by postcode",
         lambda lv: Request.api("POST", HOTSPOTS, b'{"by": "postcode"}'),
         403, "policy-refused", logged="queries"),
]  # fmt: skip


def _without(live: Live, key: str) -> Request:
    """The health node's manifest with ``key`` left out, properly signed."""
    sub = live.submission()
    manifest = canonical_json({k: v for k, v in sub.manifest.items() if k != key})
    key_ = live.world.keys[HEALTH]
    headers = {"Placelink-Manifest": b64(manifest), "Placelink-Signature": b64(key_.sign(manifest))}
    return Request.upload(sub, **headers)


# --- the database, every table, before and after -------------------------------------------


_REFLECTED: dict[str, MetaData] = {}  # by database URL


def snapshot(engine: Engine) -> dict[str, list[str]]:
    """Every row of every table in the database (reflected, so a table added later is covered
    too), as sorted text: two equal snapshots mean no change at all."""
    metadata = _REFLECTED.get(str(engine.url))
    if metadata is None:
        metadata = _REFLECTED[str(engine.url)] = MetaData()
        metadata.reflect(engine)
    with engine.connect() as connection:
        return {
            name: sorted(repr(tuple(row)) for row in connection.execute(select(table)))
            for name, table in sorted(metadata.tables.items())
        }


def test_the_table_covers_the_issue_list() -> None:
    ids = {case.id for case in CASES}
    assert len(ids) == len(CASES), "two rows share an id"
    required = {"malformed-body", "truncated-clks", "oversized-body", "wrong-content-type",
                "bad-signature", "missing-signature", "replay-other-content", "wrong-epoch",
                "wrong-schema-hash", "not-a-party", "missing-token", "unknown-token",
                "link-run-not-json", "header-lies-record-count", "unknown-policy",
                "revoked-key", "retired-epoch", "stale-timestamp", "expired-token",
                "wrong-scope-token"}  # fmt: skip
    assert required <= ids, sorted(required - ids)


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_bad_input_is_a_clear_problem_and_changes_nothing(live: Live, case: Case) -> None:
    request = case.make(live)  # may set the stage (revoke a key, retire an epoch) first
    try:
        _check(live, case, request)
    finally:
        if case.undo is not None:
            case.undo(live)


def _check(live: Live, case: Case, request: Request) -> None:
    engine = live.service.store.engine
    if request.who:  # fetched (and its client assertion recorded) before the snapshot
        live.token(request.who)
    before = snapshot(engine)
    assert before["link_runs"] and before["policies"], "the store must hold data to protect"
    response = _send(live, request)
    assert response.status_code == case.status, response.get_data(as_text=True)
    assert response.mimetype == "application/problem+json"
    body = response.get_json(force=True)
    assert body["type"] == PROBLEM_BASE + case.slug
    assert body["status"] == case.status
    assert body["title"].strip()
    assert body["detail"].strip(), "a problem must say what to do (detail/fix)"
    after = snapshot(engine)
    if case.logged:
        added = [row for row in after[case.logged] if row not in before[case.logged]]
        assert len(added) == 1 and "'refused'" in added[0]
        after[case.logged] = before[case.logged]
    assert after == before
