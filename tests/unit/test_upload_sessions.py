"""Upload sessions in the domain layer (linkage.intake, linkage.upload_chunks), on SQLite and
PostgreSQL: offsets, chunks cut short, incomplete commits, expiry. Time is injected."""

from __future__ import annotations

import dataclasses
import datetime as dt
import io
from typing import Any

import pytest
from sqlalchemy import func, select

from gateway.submit import Submission
from keys.errors import AccessError, InputError
from linkage.intake import UPLOAD_TTL, UploadStatus, commit_upload, open_upload
from linkage.service import LinkageService
from linkage.tables import BatchRow, BodyChunkRow, RecordRow, UploadRow
from linkage.upload_chunks import receive_chunk, upload_session
from linkage.upload_storage import OffsetConflict
from tests.unit import test_linkage_service as base
from tests.unit.test_linkage_service import NOW, World, submission

world, service = base.world, base.service  # the fixtures: one world, a service per store


def counts(service: LinkageService) -> dict[str, int]:
    with service.store.engine.connect() as connection:
        return {
            table.__tablename__: int(
                connection.scalar(select(func.count()).select_from(table)) or 0
            )
            for table in (BatchRow, RecordRow, UploadRow, BodyChunkRow)
        }


def opened(service: LinkageService, sub: Submission, now: dt.datetime = NOW) -> UploadStatus:
    headers = sub.headers()
    return open_upload(store=service.store, policies=service.policies,
                       manifest_b64=headers["Placelink-Manifest"],
                       signature_b64=headers["Placelink-Signature"], length=len(sub.body),
                       now=now)  # fmt: skip


def chunk(service: LinkageService, sub: Submission, offset: int, data: bytes, **kw: Any) -> int:
    session = upload_session(service.store, sub.manifest["batch_id"],
                             sub.headers()["Placelink-Signature"])  # fmt: skip
    declared = kw.pop("length", len(data))
    return receive_chunk(store=service.store, session=session, content_type=sub.headers()[
        "Content-Type"], offset=offset, length=declared, stream=io.BytesIO(data))  # fmt: skip


def commit(service: LinkageService, sub: Submission) -> Any:
    session = upload_session(service.store, sub.manifest["batch_id"],
                             sub.headers()["Placelink-Signature"])  # fmt: skip
    return commit_upload(store=service.store, policies=service.policies,
                         schemas=service.schemas, session=session, now=NOW)  # fmt: skip


def test_chunks_must_follow_on_and_one_cut_short_stores_nothing(
    service: LinkageService, world: World
) -> None:
    sub = submission(world, "police")
    assert opened(service, sub) == UploadStatus(
        sub.manifest["batch_id"], 0, len(sub.body), len(world.batches["police"]), False
    )
    half = len(sub.body) // 2
    assert chunk(service, sub, 0, sub.body[:half]) == half
    with pytest.raises(OffsetConflict):
        chunk(service, sub, 0, sub.body[:half])  # sent again: refused, not stored twice
    with pytest.raises(InputError, match="cut short"):
        chunk(service, sub, half, sub.body[half : half + 10], length=100)
    with pytest.raises(InputError, match="past the upload's declared length"):
        chunk(service, sub, half, sub.body[half:] + b"extra")
    with pytest.raises(InputError, match="not complete"):
        commit(service, sub)
    resumed = opened(service, sub, NOW + dt.timedelta(hours=2))  # no freshness check: resumed
    assert (resumed.offset, resumed.resumed) == (half, True)
    assert chunk(service, sub, half, sub.body[half:]) == len(sub.body)
    result = commit(service, sub)
    assert (result.records, result.already_stored) == (len(world.batches["police"]), False)
    assert service.store.batch_body(sub.manifest["batch_id"]) == sub.body
    assert commit(service, sub).already_stored


def test_requests_without_the_uploads_signature_are_refused(
    service: LinkageService, world: World
) -> None:
    sub = submission(world, "police")
    opened(service, sub)
    other = submission(world, "police").headers()["Placelink-Signature"]
    for signature in (other, None, "%%%"):
        with pytest.raises(AccessError):
            upload_session(service.store, sub.manifest["batch_id"], signature)
    with pytest.raises(InputError, match="no upload is open"):
        upload_session(service.store, "not-an-upload", other)


def test_unfinished_uploads_expire_and_refused_ones_are_deleted(
    service: LinkageService, world: World
) -> None:
    empty = counts(service)
    old_time = NOW - UPLOAD_TTL - dt.timedelta(minutes=1)
    old = submission(world, "police", now=old_time)
    opened(service, old, old_time)
    chunk(service, old, 0, old.body[:100])
    assert counts(service)["body_chunks"] == 1
    fresh = submission(world, "health")
    opened(service, fresh)  # opening an upload expires the old unfinished one
    assert counts(service) == {**empty, "uploads": 1}
    body = bytearray(fresh.body)
    body[len(body) // 2] ^= 1
    bad = dataclasses.replace(fresh, body=bytes(body))
    chunk(service, bad, 0, bad.body)
    with pytest.raises(InputError, match="does not match the signed manifest"):
        commit(service, bad)
    assert counts(service) == empty
