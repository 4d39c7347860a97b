"""A pending publication: the signed batch a node is about to send and the pseudonym map that
holds its new pseudonyms, on disk before a byte is sent, so that a node killed mid-publication
(SIGKILL, a power cut) resumes that very batch instead of encoding anew with new pseudonyms.

In ``<state>/<source>.pending/`` (0700; each file 0600, written under a temporary name, fsynced,
renamed, and the folder fsynced):

- ``batch.clks``: the body exactly as signed;
- ``pseudonyms.csv``: the map the node keeps once the batch is stored (its map before, plus the
  new pseudonyms; the format of the map it will replace, which never leaves the node either);
- ``pending.json``, written last: the publication is pending exactly when it exists. It holds
  the manifest and signature as sent, the name of the map it replaces, the map's SHA-256 and the
  per-field counts: names and counts, never a record ID, pseudonym or value.

:func:`finish` (the batch is stored, or the publication is dropped) promotes the map first
(rename onto the real map), then removes ``pending.json``, then the rest. A crash between any
two steps leaves a state the next run finishes the same way: a pending map that is gone while
its target holds the recorded digest was promoted already. The pseudonyms are kept in every
case, a dropped publication's too: a pseudonym once drawn is never drawn again.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from gateway.faults import fault_point
from gateway.pseudonyms import PseudonymMap, sync_folder
from gateway.submit import Submission, submission_from_file
from keys.errors import InputError, PlacelinkError
from policies.clks import EncodedBatch
from policies.clks_stream import write_clks

PENDING_SUFFIX = ".pending"  # <state>/<source>.pending/, beside <source>.ids
BODY, MAP, INDEX = "batch.clks", "pseudonyms.csv", "pending.json"
FORMAT = 1
DISCARD_FIX = (
    "drop it with `placelink gateway publish ... --discard-pending` (its pseudonyms are kept;"
    " the extract is then encoded and sent afresh)"
)


class PendingRefused(PlacelinkError):
    """The service refused a pending publication, or it cannot be resumed as it stands."""


@dataclass(frozen=True)
class PendingPublication:
    """A signed batch waiting in ``folder`` to be stored at the service."""

    folder: Path
    manifest: dict[str, Any]
    signature: bytes
    map_name: str  # the map it replaces, in the state folder
    map_sha256: str
    field_counts: dict[str, dict[str, int]]
    saved_at: str

    @property
    def batch_id(self) -> str:
        return str(self.manifest["batch_id"])

    @property
    def body_path(self) -> Path:
        return self.folder / BODY

    @property
    def map_path(self) -> Path:
        return self.folder / MAP

    @property
    def target(self) -> Path:
        return self.folder.parent / self.map_name

    def submission(self) -> Submission:
        """The submission exactly as it was signed (its body checked against the manifest)."""
        return submission_from_file(self.body_path, self.manifest, self.signature)

    def as_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "batch_id": self.batch_id,
            "manifest": self.manifest,
            "signature": base64.b64encode(self.signature).decode("ascii"),
            "map": self.map_name,
            "map_sha256": self.map_sha256,
            "field_counts": self.field_counts,
            "saved_at": self.saved_at,
        }


def pending_folder(state_dir: Path, source: str) -> Path:
    """One pending folder per source, as one pseudonym map per source."""
    return state_dir / f"{source}{PENDING_SUFFIX}"


def _write_atomically(path: Path, write: Callable[[BinaryIO], object]) -> None:
    """Write ``path`` through a temporary file: owner-only, fsynced, renamed, folder fsynced."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        os.fchmod(fd, 0o600)  # O_CREAT's mode does not apply to a stale temporary file
        write(handle)
        handle.flush()
        os.fsync(fd)
    tmp.replace(path)
    sync_folder(path.parent)


def write_batch(state_dir: Path, source: str, batch: EncodedBatch) -> Path:
    """Write the batch's body into a fresh pending folder (stray files of a publication that
    died before it was pending are removed: nothing of them was sent)."""
    folder = pending_folder(state_dir, source)
    if (folder / INDEX).exists():
        raise PendingRefused(
            "a pending publication is waiting", fix="publish again to resume it, or " + DISCARD_FIX
        )
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(mode=0o700, parents=True)
    folder.chmod(0o700)  # whatever the umask
    _write_atomically(folder / BODY, lambda handle: write_clks(batch, handle))
    return folder / BODY


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def save_pending(
    submission: Submission,
    pseudonyms: PseudonymMap,
    *,
    target: Path,
    field_counts: dict[str, dict[str, int]],
    now: dt.datetime | None = None,
) -> PendingPublication:
    """Make the publication pending: the map with the new pseudonyms, then ``pending.json``.
    ``submission``'s body is the one :func:`write_batch` wrote."""
    assert submission.body_file is not None
    folder = submission.body_file.parent
    pseudonyms.save(folder / MAP)
    pending = PendingPublication(
        folder=folder,
        manifest=submission.manifest,
        signature=submission.signature,
        map_name=target.name,
        map_sha256=_digest(folder / MAP),
        field_counts=field_counts,
        saved_at=(now or dt.datetime.now(dt.UTC)).isoformat(timespec="seconds"),
    )
    text = json.dumps(pending.as_json(), sort_keys=True, indent=1).encode("utf-8")
    _write_atomically(folder / INDEX, lambda handle: handle.write(text))
    return pending


def find_pending(state_dir: Path, source: str) -> PendingPublication | None:
    """The source's pending publication, if there is one."""
    folder = pending_folder(state_dir, source)
    try:
        data = json.loads((folder / INDEX).read_text(encoding="utf-8"))
        if data.get("format") != FORMAT:
            raise ValueError("format")
        return PendingPublication(
            folder=folder,
            manifest=dict(data["manifest"]),
            signature=base64.b64decode(data["signature"], validate=True),
            map_name=Path(str(data["map"])).name,
            map_sha256=str(data["map_sha256"]),
            field_counts=dict(data["field_counts"]),
            saved_at=str(data["saved_at"]),
        )
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError, AttributeError, binascii.Error):
        raise InputError(
            f"the pending publication in {folder} is unreadable",
            fix="restore the folder from backup; removing it loses the new pseudonyms it holds",
        ) from None


def finish(pending: PendingPublication) -> None:
    """Keep the pending map as the node's map, then remove the pending publication."""
    if pending.map_path.exists():
        if _digest(pending.map_path) != pending.map_sha256:
            raise InputError(
                f"the pending pseudonym map in {pending.folder} is not the one recorded",
                fix="restore the folder from backup",
            )
        pending.map_path.replace(pending.target)
        sync_folder(pending.target.parent)
    elif not pending.target.exists() or _digest(pending.target) != pending.map_sha256:
        raise InputError(
            f"the pending pseudonym map in {pending.folder} is missing",
            fix="restore the folder from backup; without one, remove the folder (the batch's new"
            " records then get new pseudonyms, and may be stored under both)",
        )
    fault_point("after-promote")
    (pending.folder / INDEX).unlink()
    sync_folder(pending.folder)
    shutil.rmtree(pending.folder, ignore_errors=True)
    sync_folder(pending.folder.parent)
