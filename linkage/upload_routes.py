"""Resumable uploads (docs/formats.md, "Upload in chunks"): a thin Flask layer over
:mod:`linkage.intake`.

``POST /v1/uploads`` opens (or finds) the upload of a signed manifest; ``PATCH
/v1/uploads/<batch_id>`` appends a chunk at ``Upload-Offset``; ``GET`` (or ``HEAD``) tells the
offset received so far; ``POST /v1/uploads/<batch_id>/commit`` checks and stores the batch.
Every request needs a ``submit`` access token of the manifest's source, bound to its policy
(as ``POST /v1/batches``), and every request after the opening also carries the upload's
``Placelink-Signature``.
"""

from __future__ import annotations

import datetime as dt

from flask import Blueprint, Response, g, jsonify, request

from keys.errors import InputError
from linkage.app import _check_upload_binding, _service, problem
from linkage.auth_routes import require_party, require_scope
from linkage.intake import UploadStatus, commit_upload, open_upload
from linkage.tables import UploadRow
from linkage.upload_chunks import receive_chunk, upload_session
from linkage.upload_storage import OffsetConflict

uploads_api = Blueprint("uploads_api", __name__)


def _int_header(name: str) -> int | None:
    value = request.headers.get(name)
    if value is None:
        return None
    if not value.isdigit():
        raise InputError(f"the {name} header is not a whole number", fix=f"send {name}: N")
    return int(value)


def _answer(status: UploadStatus, code: int) -> tuple[Response, int]:
    response = jsonify(
        {
            "batch_id": status.batch_id,
            "offset": status.offset,
            "length": status.length,
            "records": status.records,
            "already_stored": status.already_stored,
        }
    )
    response.headers["Upload-Offset"] = str(status.offset)
    response.headers["Upload-Length"] = str(status.length)
    return response, code


def _signature() -> str | None:
    return request.headers.get("Placelink-Signature")


def _session(batch_id: str) -> UploadRow:
    """The open upload, to its source's ``submit`` token holding its signature."""
    caller = require_scope("submit")
    session = upload_session(_service().store, batch_id, _signature())
    caller.require("submit", policy_id=str(session.manifest["policy_id"]))
    require_party(caller, str(session.manifest["source"]))
    g.placelink_upload = (session.manifest, int(session.length))  # for the audit log
    return session


@uploads_api.post("/v1/uploads")
def post_upload() -> tuple[Response, int]:
    _check_upload_binding(require_scope("submit"))
    service = _service()
    status = open_upload(
        store=service.store,
        policies=service.policies,
        manifest_b64=request.headers.get("Placelink-Manifest"),
        signature_b64=_signature(),
        length=_int_header("Upload-Length"),
        now=dt.datetime.now(dt.UTC),
    )
    return _answer(status, 200 if status.already_stored or status.resumed else 201)


@uploads_api.get("/v1/uploads/<batch_id>")
def get_upload(batch_id: str) -> tuple[Response, int]:
    session = _session(batch_id)
    records = int(session.manifest["record_count"])
    status = UploadStatus(batch_id, int(session.received), int(session.length), records,
                          already_stored=session.committed)  # fmt: skip
    return _answer(status, 200)


@uploads_api.patch("/v1/uploads/<batch_id>")
def patch_upload(batch_id: str) -> tuple[Response, int]:
    store = _service().store
    session = _session(batch_id)
    offset = receive_chunk(
        store=store,
        session=session,
        content_type=request.content_type,
        offset=_int_header("Upload-Offset"),
        length=request.content_length,
        stream=request.stream,
    )
    records = int(session.manifest["record_count"])
    status = UploadStatus(batch_id, offset, int(session.length), records, session.committed)
    return _answer(status, 200)


@uploads_api.post("/v1/uploads/<batch_id>/commit")
def post_commit(batch_id: str) -> tuple[Response, int]:
    service = _service()
    session = _session(batch_id)
    result = commit_upload(
        store=service.store,
        policies=service.policies,
        schemas=service.schemas,
        session=session,
        now=dt.datetime.now(dt.UTC),
        recorder=service.decisions,
    )
    body = {"batch_id": batch_id, "records": result.records,
            "already_stored": result.already_stored}  # fmt: skip
    return jsonify(body), 200 if result.already_stored else 201


@uploads_api.errorhandler(OffsetConflict)
def _offset_conflict(exc: OffsetConflict) -> Response:
    return problem(409, "upload-offset", exc.message, exc.fix)
