"""The hash-chained audit log: any honest log verifies, and every tampering is caught with the
first bad entry named (property tests over random logs and random tamperings)."""

from __future__ import annotations

import base64
import json
import multiprocessing
import string
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from keys import SigningKey
from keys.errors import InputError, StorageError
from policies.audit import PAYLOAD_KEYS, AuditLog, Checkpoint, entry_hash
from policies.audit_store import FileLog, MemoryLog, encode_entry
from policies.audit_verify import verify_log

KEY = SigningKey.generate()
TRUSTED = frozenset({KEY.fingerprint})
SHORT = st.text(string.ascii_letters + string.digits + "_", min_size=1, max_size=12)
VALUE = st.one_of(st.integers(0, 10_000), SHORT, st.lists(SHORT, max_size=3), st.booleans())
KINDS = sorted(set(PAYLOAD_KEYS) - {"checkpoint"})


@st.composite
def events(draw: st.DrawFn) -> tuple[str, dict[str, Any]]:
    kind = draw(st.sampled_from(KINDS))
    keys = draw(st.lists(st.sampled_from(sorted(PAYLOAD_KEYS[kind])), max_size=4, unique=True))
    return kind, {key: draw(VALUE) for key in keys}


def build(items: list[tuple[str, dict[str, Any]]], every: int = 4) -> list[str]:
    log = AuditLog(MemoryLog(), actor="gateway:test", signer=KEY, checkpoint_every=every)
    for kind, payload in items:
        log.append(kind, payload, policy_id="p", policy_version="1")
    return list(log.backend.lines())


def verdict(lines: list[str], held: list[Checkpoint] | None = None) -> Any:
    return verify_log(lines, trusted_keys=TRUSTED, held=held or [])


def held_of(lines: list[str]) -> list[Checkpoint]:
    return [Checkpoint.from_entry(e) for e in map(json.loads, lines) if e["kind"] == "checkpoint"]


def rehash_from(entries: list[dict[str, Any]], start: int) -> list[str]:
    """What an attacker without the key can do: recompute every hash and link from ``start``."""
    for index in range(start, len(entries)):
        if index:
            entries[index]["prev_hash"] = entries[index - 1]["entry_hash"]
        entries[index]["entry_hash"] = entry_hash(entries[index])
    return [encode_entry(e).decode() for e in entries]


LOGS = st.lists(events(), min_size=6, max_size=25)
FAST = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FAST
@given(LOGS)
def test_any_honest_log_verifies(items: list[tuple[str, dict[str, Any]]]) -> None:
    lines = build(items)
    result = verdict(lines, held_of(lines))
    assert result.ok, result.first_bad
    assert result.entries == len(lines)
    assert result.checkpoints == len(held_of(lines)) >= len(items) // 4 >= 1
    assert result.unanchored < 4


@FAST
@given(LOGS, st.data())
def test_an_edited_byte_names_its_entry(items: list[Any], data: st.DataObject) -> None:
    lines = build(items)
    k = data.draw(st.integers(0, len(lines) - 1))
    start = lines[k].index('"payload":') + len('"payload":')
    end = lines[k].index(',"policy_id"')
    if end - start <= 2:  # an empty payload: edit the time instead
        start, end = lines[k].index('"time":"') + 8, lines[k].index('"time":"') + 20
    at = data.draw(st.integers(start, end - 1))
    new = data.draw(st.sampled_from([c for c in string.ascii_letters + "0" if c != lines[k][at]]))
    lines[k] = lines[k][:at] + new + lines[k][at + 1 :]
    bad = verdict(lines).first_bad
    assert bad is not None and bad.seq == k


@FAST
@given(LOGS, st.data())
def test_a_dropped_entry_is_named(items: list[Any], data: st.DataObject) -> None:
    lines = build(items)
    k = data.draw(st.integers(0, len(lines) - 2))
    del lines[k]
    bad = verdict(lines).first_bad
    assert bad is not None and (bad.seq, bad.problem) == (k, "dropped")


@FAST
@given(LOGS, st.data())
def test_an_inserted_entry_is_named(items: list[Any], data: st.DataObject) -> None:
    lines = build(items)
    k = data.draw(st.integers(1, len(lines) - 1))
    entries = [json.loads(line) for line in lines]
    if data.draw(st.booleans(), label="forged"):  # a well-formed entry with seq k, hashes right
        forged = {**entries[k], "payload": {}, "kind": "decision"}
        forged["entry_hash"] = entry_hash(forged)
        lines.insert(k, encode_entry(forged).decode())
    else:  # a replayed copy of an older entry
        j = data.draw(st.integers(0, k - 2)) if k >= 2 else None
        if j is None:
            return
        lines.insert(k, lines[j])
    bad = verdict(lines).first_bad
    assert bad is not None and bad.seq == k and bad.problem in ("inserted", "broken-link")


@FAST
@given(LOGS, st.data())
def test_swapped_entries_are_named(items: list[Any], data: st.DataObject) -> None:
    lines = build(items)
    k = data.draw(st.integers(0, len(lines) - 2))
    lines[k], lines[k + 1] = lines[k + 1], lines[k]
    bad = verdict(lines).first_bad
    assert bad is not None and (bad.seq, bad.problem) == (k, "reordered")


@FAST
@given(LOGS, st.data())
def test_truncation_below_a_held_checkpoint_is_caught(
    items: list[Any], data: st.DataObject
) -> None:
    lines = build(items)
    held = held_of(lines)
    cut = data.draw(st.integers(0, held[-1].seq))
    bad = verdict(lines[:cut], held).first_bad
    assert bad is not None and (bad.seq, bad.problem) == (cut, "truncated")
    assert verdict(lines[:cut]).ok  # without a held checkpoint, truncation cannot be seen


@FAST
@given(LOGS, st.data())
def test_a_replaced_checkpoint_signature_is_caught(items: list[Any], data: st.DataObject) -> None:
    lines = build(items)
    entries = [json.loads(line) for line in lines]
    at = data.draw(st.sampled_from([i for i, e in enumerate(entries) if e["kind"] == "checkpoint"]))
    signer = data.draw(st.sampled_from([KEY, SigningKey.generate()]))
    forged = base64.b64encode(signer.sign(b"another statement")).decode()
    entries[at]["payload"]["signature"] = forged
    if signer is not KEY:  # a forger re-signs with a key of their own
        entries[at]["payload"]["signer"] = signer.fingerprint
        entries[at]["payload"]["public_key"] = signer.public_raw.hex()
    bad = verdict(rehash_from(entries, at)).first_bad
    assert bad is not None and (bad.seq, bad.problem) == (at, "bad-checkpoint")


@FAST
@given(LOGS, st.data())
def test_a_rehashed_rewrite_is_caught_by_the_next_checkpoint(
    items: list[Any], data: st.DataObject
) -> None:
    lines = build(items)
    entries = [json.loads(line) for line in lines]
    checkpoints = [i for i, e in enumerate(entries) if e["kind"] == "checkpoint"]
    k = data.draw(st.integers(0, checkpoints[-1] - 1))
    held = held_of(lines)
    entries[k]["payload"] = {"outcome": "rewritten"} if entries[k]["kind"] == "submission" else {}
    entries[k]["kind"] = "submission"
    rewritten = rehash_from(entries, k)
    bad = verdict(rewritten).first_bad
    first_after = min(c for c in checkpoints if c > k)
    assert bad is not None and (bad.seq, bad.problem) == (first_after, "bad-checkpoint")
    bad = verdict(rewritten, held).first_bad  # a held checkpoint names it sooner
    assert bad is not None and bad.problem == "rewritten"
    assert bad.seq == min(c.seq for c in held if c.seq >= k)


def test_a_payload_key_off_the_allow_list_is_refused_before_writing() -> None:
    log = AuditLog(MemoryLog(), actor="gateway:test", signer=KEY)
    with pytest.raises(InputError, match="given_name"):
        log.append("publication", {"given_name": "x"})
    with pytest.raises(InputError, match="longer than"):
        log.append("publication", {"fields": ["A" * 200]})  # an encoding does not fit
    assert list(log.backend.lines()) == []


def test_every_kind_has_an_allow_list_free_of_identifying_keys() -> None:
    identifying = {"record_id", "given_name", "family_name", "date_of_birth", "postcode",
                   "address", "nhs_number", "name", "pseudonym", "pseudonyms", "clks",
                   "filters", "tokens", "body", "nonce", "token"}  # fmt: skip
    for kind, keys in PAYLOAD_KEYS.items():
        assert not keys & identifying, kind


def test_an_untrusted_log_signer_fails() -> None:
    lines = build([("decision", {"outcome": "allow"})] * 5)
    bad = verify_log(lines, trusted_keys=frozenset({"ed25519:" + "0" * 64})).first_bad
    assert bad is not None and bad.problem == "bad-checkpoint" and "not trusted" in bad.detail


def _append_many(path: str, worker: int) -> None:
    log = AuditLog(FileLog(Path(path)), actor=f"w{worker}", signer=KEY, checkpoint_every=7)
    for n in range(40):
        log.append("query", {"decision": "answered", "epsilon": n})


def test_concurrent_appends_from_processes_keep_one_chain(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    context = multiprocessing.get_context("fork")
    workers = [context.Process(target=_append_many, args=(str(path), w)) for w in range(4)]
    for process in workers:
        process.start()
    for process in workers:
        process.join(30)
        assert process.exitcode == 0
    lines = list(FileLog(path).lines())
    result = verdict(lines)
    assert result.ok, result.first_bad
    assert sum(1 for e in map(json.loads, lines) if e["kind"] == "query") == 160
    assert result.checkpoints >= 160 // 7


def test_a_torn_last_line_is_refused_for_appending(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    log = AuditLog(FileLog(path), actor="gateway:test", signer=KEY)
    log.append("decision", {"outcome": "allow"})
    with path.open("ab") as file:
        file.write(b'{"seq": 1, "ti')
    with pytest.raises(StorageError, match="incomplete"):
        log.append("decision", {"outcome": "deny"})
    bad = verdict(list(FileLog(path).lines())).first_bad
    assert bad is not None and (bad.seq, bad.problem) == (1, "malformed")


def test_on_demand_checkpoint_signs_the_head(tmp_path: Path) -> None:
    log = AuditLog(FileLog(tmp_path / "a.jsonl"), actor="linkage-service", signer=KEY)
    assert log.checkpoint() is None  # nothing to sign yet
    log.append("link_run", {"records": 10})
    made = log.checkpoint()
    assert made is not None and made.seq == 0 and made.problem(TRUSTED) is None
    assert log.checkpoint() == made  # the head is already a checkpoint: no new entry
    assert log.checkpoints() == [made]
