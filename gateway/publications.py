"""A gateway node's publication log, and the lock that lets one publication run at a time.

Each attempt to publish (from the node's API or ``placelink gateway publish``) is recorded in
``<state>/publications.jsonl``, one JSON object a line, newest last: when, under which policy
version and key epoch, how many records, which fields and attributes were sent, how many bytes,
the batch id, the service's answer, and the outcome: ``published``, ``resumed`` (the node's
pending publication, left by a publication that was killed or could not reach the service, was
sent and stored: :mod:`gateway.pending`) or ``failed`` (the error's message and fix, which
never carry a value). ``pending`` says what became of a pending publication in this attempt:
``resumed``, ``expired`` (too old to open at the service, never stored: dropped, its
pseudonyms kept, and the extract published afresh) or ``discarded`` (on request).
Never a record ID, pseudonym or any value of the extract.
The log keeps the latest :data:`KEEP` entries.

Publishing takes an exclusive lock on ``<state>/publish.lock`` (``flock``, so it holds between
gunicorn workers, between threads and against the CLI): a second publication while one runs is
refused with :class:`PublicationInProgress`, never queued behind it.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import os
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from gateway.node import Publication
from keys.errors import PlacelinkError

KEEP = 500
LOG_NAME = "publications.jsonl"
LOCK_NAME = "publish.lock"
Outcome = Literal["published", "resumed", "failed"]


class PublicationInProgress(PlacelinkError):
    """Another publication of this node holds the lock."""


@dataclass(frozen=True)
class PublicationRecord:
    """One attempt to publish, as the log keeps it (counts and names only)."""

    publication_id: str
    started_at: str
    finished_at: str
    seconds: float
    trigger: str
    requested_by: str
    outcome: Outcome
    policy_id: str = ""
    policy_version: str = ""
    epoch: int | None = None
    records: int = 0
    fields: list[str] = field(default_factory=list)
    attributes: list[str] = field(default_factory=list)
    field_counts: dict[str, dict[str, int]] = field(default_factory=dict)
    bytes_sent: int = 0
    batch_id: str = ""
    service_response: dict[str, Any] = field(default_factory=dict)
    error: dict[str, str] | None = None
    pending: str = ""  # what became of a pending publication: resumed, expired or discarded

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


class PublicationLog:
    """The node's publication log in its state folder (owner-only, append-only lines)."""

    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / LOG_NAME

    def append(self, record: PublicationRecord) -> None:
        """Append one line in a single write; trim to the latest :data:`KEEP` now and then.
        Callers hold the publication lock, so no two appends race."""
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        line = json.dumps(record.as_json(), sort_keys=True, separators=(",", ":")) + "\n"
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            os.write(fd, line.encode("utf-8"))
        finally:
            os.close(fd)
        lines = self._lines()
        if len(lines) > 2 * KEEP:
            tmp = self.path.with_name(LOG_NAME + ".tmp")
            tmp.write_text("".join(f"{x}\n" for x in lines[-KEEP:]), encoding="utf-8")
            tmp.chmod(0o600)
            tmp.replace(self.path)

    def _lines(self) -> list[str]:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return []
        return [line for line in text.splitlines() if line.strip()]

    def recent(self, limit: int = 20) -> list[dict[str, Any]]:
        """The latest ``limit`` entries, newest first (a line cut short by a crash is skipped)."""
        found: list[dict[str, Any]] = []
        for line in reversed(self._lines()):
            if len(found) >= limit:
                break
            try:
                found.append(json.loads(line))
            except json.JSONDecodeError:
                continue
        return found


@contextmanager
def publication_lock(state_dir: Path) -> Iterator[None]:
    """Hold the node's publication lock, or raise :class:`PublicationInProgress` at once."""
    state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(state_dir / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise PublicationInProgress(
                "another publication of this node is running",
                fix="wait for it to finish (GET /v1/publications shows it), then try again",
            ) from None
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock


def _stamp(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).isoformat(timespec="seconds")


def _what_was_sent(publication: Publication) -> dict[str, Any]:
    batch = publication.result.batch
    counts = {
        name: {"valid": r.valid, "invalid": r.invalid, "missing": r.missing}
        for name, r in publication.result.report.items()
    }
    response = {k: v for k, v in publication.response.items() if k in ("records", "batch_id",
                "already_stored")}  # fmt: skip
    return {
        "policy_id": batch.policy_id,
        "policy_version": batch.policy_version,
        "epoch": batch.epoch,
        "records": len(batch),
        "fields": [f.name for f in batch.fields],
        "attributes": list(batch.attribute_names),
        "field_counts": counts,
        "bytes_sent": publication.bytes_sent,
        "batch_id": publication.batch_id,
        "service_response": response,
        "pending": publication.pending,
    }


def publish_and_record(
    attempt: Callable[[], Publication],
    *,
    state_dir: Path,
    trigger: str,
    requested_by: str,
    now: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
) -> tuple[PublicationRecord, PlacelinkError | None]:
    """Run ``attempt`` (a configured :func:`gateway.node.publish`) under the publication lock
    and log it. Returns the record and, for a failed attempt, the error (not raised, so the
    caller decides how to answer); raises :class:`PublicationInProgress` without logging
    when another publication runs. An unexpected exception is logged, then propagates."""
    with publication_lock(state_dir):
        started, clock = now(), time.monotonic()
        log = PublicationLog(state_dir)

        def finish(outcome: Outcome, facts: dict[str, Any]) -> PublicationRecord:
            record = PublicationRecord(
                publication_id=str(uuid.uuid4()),
                started_at=_stamp(started),
                finished_at=_stamp(now()),
                seconds=round(time.monotonic() - clock, 3),
                trigger=trigger,
                requested_by=requested_by,
                outcome=outcome,
                **facts,
            )
            log.append(record)
            return record

        try:
            publication = attempt()
        except PlacelinkError as exc:
            error = {"kind": type(exc).__name__, "message": exc.message, "fix": exc.fix}
            return finish("failed", {"error": error}), exc
        except Exception as exc:
            error = {"kind": type(exc).__name__, "message": "an unexpected error",
                     "fix": "see the node's error log"}  # fmt: skip
            finish("failed", {"error": error})
            raise
        outcome: Outcome = "resumed" if publication.pending == "resumed" else "published"
        return finish(outcome, _what_was_sent(publication)), None
