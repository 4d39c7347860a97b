"""Verifying an audit log offline, and naming the first bad entry.

For each line, in order (the first failure stops the check; its ``seq`` is the position the
entry should hold, so a dropped entry is named by the number that is missing):

(1) the line is one JSON object with exactly the entry keys (else ``malformed``);
(2) its payload keys are on the kind's allow-list and its strings short (else ``forbidden``);
(3) its ``seq`` is the next number: higher means an entry was ``dropped`` (or, when the missing
    number turns up later, ``reordered``); lower or repeated means one was ``inserted``
    (or ``reordered``);
(4) its ``prev_hash`` is the previous entry's hash (else ``broken-link``);
(5) its ``entry_hash`` is the hash of its content (else ``edited``);
(6) a checkpoint entry: its signer is trusted, its signature verifies and the head it signed
    is the previous entry's hash (else ``bad-checkpoint``: history before it was rewritten);
(7) a checkpoint the verifier holds from earlier (``held``): its signature verifies under a
    trusted key, and the log's entry at its seq has its head (else ``rewritten``); the log
    reaches its seq (else ``truncated``).

Entries after the last verified checkpoint are ``unanchored``: internally consistent, but the
owner of the log could still rewrite them. The verdict says how many.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from keys.errors import InputError
from policies.audit import ENTRY_KEYS, GENESIS, Checkpoint, check_payload, entry_hash


@dataclass(frozen=True)
class Finding:
    """The first bad entry: its seq (position), its line number and what is wrong."""

    seq: int
    line: int
    problem: str
    detail: str


@dataclass(frozen=True)
class Verdict:
    entries: int
    checkpoints: int
    head: str
    unanchored: int
    first_bad: Finding | None

    @property
    def ok(self) -> bool:
        return self.first_bad is None

    def to_json(self) -> dict[str, Any]:
        bad = self.first_bad
        return {
            "ok": self.ok,
            "entries": self.entries,
            "checkpoints": self.checkpoints,
            "head": self.head,
            "unanchored": self.unanchored,
            "first_bad": None if bad is None else bad.__dict__,
        }


class _Bad(Exception):
    def __init__(self, problem: str, detail: str, seq: int | None = None) -> None:
        super().__init__(detail)
        self.problem, self.detail, self.seq = problem, detail, seq


def _parse(line: str) -> dict[str, Any]:
    """(1) and (2)."""
    try:
        entry = json.loads(line)
    except ValueError:
        raise _Bad("malformed", "the line is not a complete JSON entry") from None
    if not isinstance(entry, dict) or set(entry) != ENTRY_KEYS:
        raise _Bad("malformed", "the entry does not have exactly the entry keys")
    if not isinstance(entry["seq"], int) or not isinstance(entry["payload"], dict):
        raise _Bad("malformed", "seq is not a number or payload not an object")
    try:
        check_payload(str(entry["kind"]), entry["payload"])
    except InputError as exc:
        raise _Bad("forbidden", exc.message) from None
    return entry


def _check_seq(
    entry: Mapping[str, Any],
    expected: int,
    positions: dict[int, list[int]],
    previous: Mapping[str, Any] | None,
) -> None:
    """(3) ``positions``: the line indexes at which each seq occurs."""
    seq = entry["seq"]
    if seq == expected:
        return
    if seq > expected:
        if any(at > expected for at in positions.get(expected, ())):
            raise _Bad("reordered", f"seq {seq} comes where {expected} should")
        raise _Bad("dropped", f"entries {expected} to {seq - 1} are missing")
    if any(at < expected for at in positions.get(seq, ())):
        sibling = previous is not None and previous["prev_hash"] == entry["prev_hash"]
        at = seq if sibling else None  # a forged entry took this one's place just before it
        raise _Bad("inserted", f"seq {seq} appears twice: an entry was inserted", seq=at)
    raise _Bad("reordered", f"seq {seq} comes after {expected - 1}")


def _check_checkpoint(
    entry: Mapping[str, Any], previous: Mapping[str, Any] | None, trusted: frozenset[str]
) -> None:
    """(6)."""
    try:
        checkpoint = Checkpoint.from_entry(entry)
    except (InputError, KeyError):
        raise _Bad("bad-checkpoint", "the checkpoint lacks a field") from None
    why = checkpoint.problem(trusted)
    if why:
        raise _Bad("bad-checkpoint", f"the checkpoint cannot be trusted: {why}")
    if previous is None or (checkpoint.seq, checkpoint.head) != (
        previous["seq"],
        previous["entry_hash"],
    ):
        raise _Bad(
            "bad-checkpoint",
            "the checkpoint signed another head than the entry before it: history was rewritten",
        )


def _check_entry(
    entry: dict[str, Any], previous: dict[str, Any] | None, trusted: frozenset[str]
) -> None:
    """(4) to (6)."""
    if entry["prev_hash"] != (GENESIS if previous is None else previous["entry_hash"]):
        raise _Bad("broken-link", "prev_hash is not the previous entry's hash")
    if entry["entry_hash"] != entry_hash(entry):
        raise _Bad("edited", "the entry's content does not match its hash")
    if entry["kind"] == "checkpoint":
        _check_checkpoint(entry, previous, trusted)


def _check_held(held: dict[int, Checkpoint], entry: Mapping[str, Any]) -> None:
    """(7) for the held checkpoint at this entry's seq, if any."""
    checkpoint = held.get(entry["seq"])
    if checkpoint is not None and checkpoint.head != entry["entry_hash"]:
        raise _Bad("rewritten", "the entry differs from the one a held checkpoint signed")


def _positions(lines: list[str]) -> dict[int, list[int]]:
    found: dict[int, list[int]] = {}
    for index, line in enumerate(lines):
        try:
            seq = json.loads(line).get("seq")
        except (ValueError, AttributeError):
            continue
        if isinstance(seq, int):
            found.setdefault(seq, []).append(index)
    return found


def verify_log(
    lines: Iterable[str], *, trusted_keys: frozenset[str], held: Iterable[Checkpoint] = ()
) -> Verdict:
    """Check a log line by line (the checklist above); stop at the first bad entry."""
    text = [line for line in lines if line.strip()]
    held_by_seq = _held(held, trusted_keys)
    positions = _positions(text)
    previous: dict[str, Any] | None = None
    checkpoints, anchored = 0, -1
    for index, line in enumerate(text):
        try:
            entry = _parse(line)
            _check_seq(entry, index, positions, previous)
            _check_entry(entry, previous, trusted_keys)
            _check_held(held_by_seq, entry)
        except _Bad as bad:
            finding = Finding(
                index if bad.seq is None else bad.seq, index + 1, bad.problem, bad.detail
            )
            return _verdict(index, checkpoints, previous, anchored, finding)
        if entry["kind"] == "checkpoint":
            checkpoints += 1
        if entry["kind"] == "checkpoint" or entry["seq"] in held_by_seq:
            anchored = index
        previous = entry
    beyond = [seq for seq in held_by_seq if seq >= len(text)]
    if beyond:
        detail = f"a held checkpoint covers seq {max(beyond)} but the log ends before it"
        finding = Finding(len(text), len(text) + 1, "truncated", detail)
        return _verdict(len(text), checkpoints, previous, anchored, finding)
    return _verdict(len(text), checkpoints, previous, anchored, None)


def _held(held: Iterable[Checkpoint], trusted: frozenset[str]) -> dict[int, Checkpoint]:
    """(7) a held checkpoint that does not verify is itself an error (it proves nothing)."""
    found: dict[int, Checkpoint] = {}
    for checkpoint in held:
        why = checkpoint.problem(trusted)
        if why:
            raise InputError(
                f"the held checkpoint at seq {checkpoint.seq} cannot be trusted: {why}",
                fix="pass the key of the log's signer with --key, and the checkpoints as received",
            )
        found[checkpoint.seq] = checkpoint
    return found


def _verdict(
    count: int,
    checkpoints: int,
    previous: Mapping[str, Any] | None,
    anchored: int,
    finding: Finding | None,
) -> Verdict:
    head = str(previous["entry_hash"]) if previous else GENESIS
    return Verdict(count, checkpoints, head, count - 1 - anchored, finding)
