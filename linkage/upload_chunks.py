"""Chunks of a resumable upload: check (8) of :mod:`linkage.intake`'s checklist.

A request about an open upload must carry the upload's signature (its credential: only the
node that signed the manifest, or whoever saw it on the wire, holds it; TLS keeps it off the
wire). A chunk is spooled (to disk past ``PIECE_BYTES``) before any database work, so a
connection that drops mid-chunk stores nothing and holds no lock; then it is stored whole in
one transaction that moves the offset on.
"""

from __future__ import annotations

import binascii
import hmac
import tempfile
from typing import IO

from keys.errors import AccessError, InputError
from linkage.intake import MAX_REQUEST_BYTES, b64decode, check_content_type, check_length
from linkage.storage import Store
from linkage.tables import UploadRow
from linkage.upload_storage import PIECE_BYTES, OffsetConflict


def upload_session(store: Store, batch_id: str, signature_b64: str | None) -> UploadRow:
    """(8) the open upload of this batch id, to a caller holding its signature."""
    session = store.uploads.find(batch_id)
    if session is None:
        raise InputError(
            "no upload is open under this batch id (never opened, refused, or expired)",
            fix="open it again with POST /v1/uploads",
        )
    try:
        matches = hmac.compare_digest(b64decode(signature_b64 or ""), b64decode(session.signature))
    except (ValueError, binascii.Error):
        matches = False
    if not signature_b64 or not matches:
        raise AccessError(
            "the request does not carry the upload's signature",
            fix="send the Placelink-Signature header of the upload with every request",
        )
    return session


def receive_chunk(
    *,
    store: Store,
    session: UploadRow,
    content_type: str | None,
    offset: int | None,
    length: int | None,
    stream: IO[bytes],
) -> int:
    """(8) spool the chunk (to disk past PIECE_BYTES), then store it whole in one transaction;
    the new offset. A chunk cut short stores nothing."""
    check_content_type(content_type)
    if session.committed:
        return int(session.length)
    if offset is None or length is None:
        raise InputError(
            "a chunk needs the Upload-Offset and Content-Length headers",
            fix="send the chunk with the placelink gateway",
        )
    check_length(length, MAX_REQUEST_BYTES)
    if offset + length > session.length:
        raise InputError(
            "the chunk goes past the upload's declared length",
            fix="send the .clks the upload was opened for, or open a new upload",
        )
    if offset != session.received:
        raise OffsetConflict(
            "the chunk does not start where the upload stands",
            fix="ask the upload's offset (GET /v1/uploads/<batch_id>) and resume there",
        )
    with tempfile.SpooledTemporaryFile(max_size=PIECE_BYTES) as spool:
        got = 0
        while got < length and (piece := stream.read(min(PIECE_BYTES, length - got))):
            got += spool.write(piece)
        if got != length:
            raise InputError(
                "the chunk was cut short; nothing of it was stored",
                fix="ask the upload's offset and resume there",
            )
        spool.seek(0)
        return store.uploads.append(session.batch_id, offset, spool, length)
