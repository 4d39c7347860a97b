"""The node's publication log and lock: what is kept (counts and names, never a value), in
what order, how long, and that one publication runs at a time."""

from __future__ import annotations

import datetime as dt
import json
import stat
import uuid
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import gateway.publications as publications
from gateway.node import Publication
from gateway.pipeline import EncodeResult, context_for_policy, encode_csv
from gateway.pseudonyms import PseudonymMap
from gateway.publications import (
    PublicationInProgress,
    PublicationLog,
    PublicationRecord,
    publication_lock,
    publish_and_record,
)
from gateway.schema import default_schema
from keys.errors import InputError
from policies.model import load_policy
from tests.node_world import NodeWorld, build_node_world

NOW = dt.datetime(2026, 3, 1, 9, 30, tzinfo=dt.UTC)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> NodeWorld:
    return build_node_world(tmp_path_factory.mktemp("node"), people=150)


@pytest.fixture(scope="module")
def encoded(world: NodeWorld) -> EncodeResult:
    """A real encoding of the police extract under the policy (nothing is uploaded)."""
    context = context_for_policy(load_policy(world.policy_path), default_schema(), epoch=0,
                                 today=dt.date.today())  # fmt: skip
    csv_path, mapping = world.agency_files("police")
    return encode_csv(csv_path, secret=world.secret, context=context, pseudonyms=PseudonymMap(),
                      mapping_path=mapping)  # fmt: skip


def _record(number: int) -> PublicationRecord:
    return PublicationRecord(f"p{number}", "s", "f", 0.1, "api", "staff:x", "published")


def test_the_log_lists_newest_first_and_keeps_what_it_may(tmp_path: Path) -> None:
    log = PublicationLog(tmp_path / "state")
    assert log.recent() == []
    for number in range(5):
        log.append(_record(number))
    assert [e["publication_id"] for e in log.recent(3)] == ["p4", "p3", "p2"]
    assert stat.S_IMODE(log.path.stat().st_mode) == 0o600


def test_the_log_is_trimmed_to_the_latest_entries(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(publications, "KEEP", 3)
    log = PublicationLog(tmp_path)
    for number in range(7):
        log.append(_record(number))
    assert len(log.path.read_text().splitlines()) == 3
    assert [e["publication_id"] for e in log.recent(10)] == ["p6", "p5", "p4"]


def test_a_line_cut_short_is_skipped(tmp_path: Path) -> None:
    log = PublicationLog(tmp_path)
    log.append(_record(1))
    with log.path.open("a") as handle:
        handle.write('{"publication_id": "p2", "outc')
    assert [e["publication_id"] for e in log.recent()] == ["p1"]


def test_a_second_publication_is_refused_while_one_runs(tmp_path: Path) -> None:
    with publication_lock(tmp_path), pytest.raises(PublicationInProgress):
        publish_and_record(lambda: pytest.fail("must not run"), state_dir=tmp_path,
                           trigger="api", requested_by="staff:x")  # fmt: skip
    with publication_lock(tmp_path):  # released: taken again
        pass
    assert PublicationLog(tmp_path).recent() == []  # a refused attempt is not an attempt


def test_a_publication_records_counts_and_names_never_values(
    world: NodeWorld, encoded: EncodeResult, tmp_path: Path
) -> None:
    response = {"batch_id": "b-1", "records": len(encoded.batch), "already_stored": False}
    publication = Publication(encoded, response, bytes_sent=4321, batch_id="b-1")
    record, error = publish_and_record(lambda: publication, state_dir=tmp_path, trigger="api",
                                       requested_by="staff:ab", now=lambda: NOW)  # fmt: skip
    assert error is None and record.outcome == "published"
    entry = PublicationLog(tmp_path).recent()[0]
    assert entry == json.loads(json.dumps(record.as_json()))
    assert entry["records"] == len(world.town.agency_rows["police"]) == len(encoded.batch)
    assert entry["policy_id"] == "seabrook-task-force" and entry["epoch"] == 0
    assert "given_name" in entry["fields"] and entry["bytes_sent"] == 4321
    assert entry["started_at"] == "2026-03-01T09:30:00+00:00"
    assert set(entry["field_counts"]["date_of_birth"]) == {"valid", "invalid", "missing"}
    text = PublicationLog(tmp_path).path.read_text()
    values = {v for row in world.town.agency_rows["police"] for v in row.values() if len(v) > 3}
    assert [v for v in values if v in text] == []
    pseudonyms = {encoded.batch.pseudonym_hex(i) for i in range(len(encoded.batch))}
    assert [p for p in pseudonyms if p in text] == []


def test_a_failed_publication_is_recorded_with_its_fix(tmp_path: Path) -> None:
    def attempt() -> Publication:
        raise InputError("police.csv: no record_id column", fix="map the ID column")

    record, error = publish_and_record(attempt, state_dir=tmp_path, trigger="cli",
                                       requested_by="cli")  # fmt: skip
    assert isinstance(error, InputError) and record.outcome == "failed"
    entry = PublicationLog(tmp_path).recent()[0]
    assert entry["error"] == {"kind": "InputError", "message": "police.csv: no record_id column",
                              "fix": "map the ID column"}  # fmt: skip
    assert entry["records"] == 0 and entry["batch_id"] == ""


def test_an_unexpected_error_is_recorded_then_raised(tmp_path: Path) -> None:
    def attempt() -> Publication:
        raise RuntimeError("a bug, perhaps holding a value")

    with pytest.raises(RuntimeError):
        publish_and_record(attempt, state_dir=tmp_path, trigger="api", requested_by="x")
    entry = PublicationLog(tmp_path).recent()[0]
    assert entry["outcome"] == "failed" and "value" not in json.dumps(entry)
    with publication_lock(tmp_path):  # and the lock was released
        pass


_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=20)


@given(
    entries=st.lists(
        st.builds(
            PublicationRecord,
            publication_id=_text, started_at=_text, finished_at=_text,
            seconds=st.floats(0, 1e6), trigger=_text, requested_by=_text,
            outcome=st.sampled_from(["published", "failed"]),
            fields=st.lists(_text, max_size=4),
            field_counts=st.dictionaries(_text, st.dictionaries(_text, st.integers(0, 10**9))),
            error=st.none() | st.dictionaries(_text, _text, max_size=3),
        ),
        min_size=1, max_size=5,
    )
)  # fmt: skip
@settings(max_examples=40, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_what_is_logged_is_what_is_listed(tmp_path: Path, entries: list[PublicationRecord]) -> None:
    log = PublicationLog(tmp_path / uuid.uuid4().hex)
    for entry in entries:
        log.append(entry)
    assert log.recent(len(entries)) == [e.as_json() for e in reversed(entries)]
