"""The pending publication on disk (gateway/pending.py): what it holds, that it reads back as
written, and that finishing it is safe to repeat after a crash between any two of its steps.
The crash tests with real processes and the real service are tests/e2e/test_publish_resume.py."""

from __future__ import annotations

import datetime as dt
import json
import stat
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.pending import (
    PendingPublication,
    PendingRefused,
    find_pending,
    finish,
    pending_folder,
    save_pending,
    write_batch,
)
from gateway.pipeline import EncodeResult, context_for_policy, encode_csv
from gateway.pseudonyms import PseudonymMap
from gateway.schema import default_schema
from gateway.submit import (
    CHUNK_BYTES,
    CHUNK_VARIABLE,
    Submission,
    chunk_bytes_from_environment,
    prepare_file_submission,
)
from keys import SigningKey
from keys.errors import ConfigError, InputError
from policies.model import load_policy
from tests.node_world import NodeWorld, build_node_world


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> NodeWorld:
    return build_node_world(tmp_path_factory.mktemp("pending"), people=120)


@pytest.fixture(scope="module")
def encoded(world: NodeWorld) -> tuple[EncodeResult, PseudonymMap]:
    context = context_for_policy(load_policy(world.policy_path), default_schema(), epoch=0,
                                 today=dt.date.today())  # fmt: skip
    csv_path, mapping = world.agency_files("police")
    pseudonyms = PseudonymMap()
    result = encode_csv(csv_path, secret=world.secret, context=context, pseudonyms=pseudonyms,
                        mapping_path=mapping)  # fmt: skip
    return result, pseudonyms


def make_pending(
    state: Path, world: NodeWorld, encoded: tuple[EncodeResult, PseudonymMap]
) -> PendingPublication:
    result, pseudonyms = encoded
    body = write_batch(state, "police", result.batch)
    submission = prepare_file_submission(body, source="police", policy_hash="p" * 64,
                                         node_key=world.node_keys["police"])  # fmt: skip
    counts = {"given_name": {"valid": 3, "invalid": 1, "missing": 0, "unverified": 0}}
    return save_pending(submission, pseudonyms, target=state / "police.ids", field_counts=counts)


def test_a_pending_publication_reads_back_as_written(
    world: NodeWorld, encoded: tuple[EncodeResult, PseudonymMap], tmp_path: Path
) -> None:
    assert find_pending(tmp_path, "police") is None
    saved = make_pending(tmp_path, world, encoded)
    found = find_pending(tmp_path, "police")
    assert found == saved
    assert found.submission().body_length == saved.body_path.stat().st_size
    assert PseudonymMap.load(found.map_path).by_record == encoded[1].by_record
    assert stat.S_IMODE(pending_folder(tmp_path, "police").stat().st_mode) == 0o700
    with pytest.raises(PendingRefused, match="pending publication is waiting"):
        write_batch(tmp_path, "police", encoded[0].batch)  # never overwritten by a new encoding


def test_a_changed_body_is_never_sent(
    world: NodeWorld, encoded: tuple[EncodeResult, PseudonymMap], tmp_path: Path
) -> None:
    pending = make_pending(tmp_path, world, encoded)
    with pending.body_path.open("r+b") as body:
        body.seek(-1, 2)
        body.write(b"\x00" if body.read(1) != b"\x00" else b"\x01")
    with pytest.raises(InputError, match="not the one its manifest signed"):
        pending.submission()
    pending.body_path.unlink()
    with pytest.raises(InputError, match="--discard-pending"):
        pending.submission()


def test_finishing_promotes_the_map_and_can_be_repeated_after_a_crash(
    world: NodeWorld, encoded: tuple[EncodeResult, PseudonymMap], tmp_path: Path
) -> None:
    pending = make_pending(tmp_path, world, encoded)
    pending.map_path.replace(pending.target)  # a crash right after the promotion's rename
    assert find_pending(tmp_path, "police") == pending
    finish(pending)  # the map is recognised as promoted already
    assert find_pending(tmp_path, "police") is None
    assert not pending_folder(tmp_path, "police").exists()
    assert PseudonymMap.load(tmp_path / "police.ids").by_record == encoded[1].by_record
    assert stat.S_IMODE((tmp_path / "police.ids").stat().st_mode) == 0o600


def test_a_lost_pending_map_is_an_error_not_a_fresh_draw(
    world: NodeWorld, encoded: tuple[EncodeResult, PseudonymMap], tmp_path: Path
) -> None:
    pending = make_pending(tmp_path, world, encoded)
    pending.map_path.unlink()
    with pytest.raises(InputError, match=r"pending pseudonym map .* is missing"):
        finish(pending)
    assert find_pending(tmp_path, "police") == pending  # still pending


def test_an_unreadable_pending_index_is_a_clear_error(tmp_path: Path) -> None:
    folder = pending_folder(tmp_path, "police")
    folder.mkdir()
    (folder / "pending.json").write_text('{"format": 1, "batch_id"')
    with pytest.raises(InputError, match="unreadable") as caught:
        find_pending(tmp_path, "police")
    assert "backup" in caught.value.fix


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    counts=st.dictionaries(
        st.text(st.characters(categories=["Ll"]), min_size=1, max_size=12),
        st.fixed_dictionaries({"valid": st.integers(0, 10**6), "missing": st.integers(0, 9)}),
        max_size=4,
    ),
    ids=st.lists(
        st.text(min_size=1, max_size=20).filter(lambda t: t.strip() == t), max_size=8, unique=True
    ),
)
def test_the_index_and_map_round_trip(
    counts: dict[str, dict[str, int]], ids: list[str], tmp_path_factory: pytest.TempPathFactory
) -> None:
    state = tmp_path_factory.mktemp("rt")
    pseudonyms = PseudonymMap()
    pseudonyms.pseudonyms_for(ids)
    key = SigningKey.generate()
    body = pending_folder(state, "police")
    body.mkdir(mode=0o700)
    (body / "batch.clks").write_bytes(b"not parsed here")
    manifest = {"batch_id": "b", "body_sha256": "0" * 64, "nonce": "n"}
    submission = Submission(manifest, b"", key.sign(b"x"), body_file=body / "batch.clks")
    saved = save_pending(submission, pseudonyms, target=state / "police.ids", field_counts=counts)
    assert find_pending(state, "police") == saved
    assert PseudonymMap.load(saved.map_path).by_record == pseudonyms.by_record
    assert json.loads((body / "pending.json").read_text())["field_counts"] == counts


@pytest.mark.parametrize("raw", ["0", "12", "x", str(CHUNK_BYTES + 1), "-5"])
def test_a_bad_chunk_size_names_the_setting(raw: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(CHUNK_VARIABLE, raw)
    with pytest.raises(ConfigError, match=CHUNK_VARIABLE):
        chunk_bytes_from_environment()


def test_the_chunk_size_defaults_and_can_be_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(CHUNK_VARIABLE, raising=False)
    assert chunk_bytes_from_environment() == CHUNK_BYTES
    monkeypatch.setenv(CHUNK_VARIABLE, "4096")
    assert chunk_bytes_from_environment() == 4096
