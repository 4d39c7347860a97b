"""Per-record pseudonyms: random, made and kept by the node, never derived from record IDs.

The map pseudonym -> record ID is the node's own (``agency.clks.ids`` beside an encoded file,
or the node's state folder); it never leaves the agency. Re-encoding reuses the map, so that a
record keeps its pseudonym, and so its entity, across publications.
"""

from __future__ import annotations

import csv
import os
import re
import secrets
from pathlib import Path

from keys.errors import InputError
from policies.clks import PSEUDONYM_BYTES

_PLAIN = re.compile(r'[^",\r\n]*')  # CSV fields that need no quoting


class PseudonymMap:
    """record ID <-> pseudonym (hex), loaded from and saved to a CSV file."""

    def __init__(self, by_record: dict[str, str] | None = None) -> None:
        self.by_record: dict[str, str] = dict(by_record or {})

    @classmethod
    def load(cls, path: Path) -> PseudonymMap:
        if not path.exists():
            return cls()
        try:
            with path.open(encoding="utf-8", newline="") as handle:
                rows = list(csv.DictReader(handle))
            return cls({row["record_id"]: row["pseudonym"] for row in rows})
        except (OSError, UnicodeDecodeError, KeyError, csv.Error):
            raise InputError(
                f"the pseudonym map {path} is unreadable",
                fix="restore it from backup; without it, records get new pseudonyms",
            ) from None

    def pseudonym_for(self, record_id: str) -> str:
        existing = self.by_record.get(record_id)
        if existing is None:
            existing = secrets.token_bytes(PSEUDONYM_BYTES).hex()
            self.by_record[record_id] = existing
        return existing

    def pseudonyms_for(self, record_ids: list[str]) -> bytes:
        """The pseudonyms of many records, raw and concatenated (new ones drawn in one go)."""
        distinct = list(dict.fromkeys(record_ids))
        known = self.by_record
        fresh = [r for r in distinct if r not in known] if known else distinct
        pool = secrets.token_bytes(PSEUDONYM_BYTES * len(fresh))
        hexed, width = pool.hex(), 2 * PSEUDONYM_BYTES
        chunks = [hexed[i : i + width] for i in range(0, len(hexed), width)]
        known.update(zip(fresh, chunks, strict=True))
        if len(fresh) == len(record_ids):  # all new and distinct: the pool is the answer
            return pool
        return bytes.fromhex("".join(map(self.by_record.__getitem__, record_ids)))

    def record_for(self) -> dict[str, str]:
        return {pseudonym: record_id for record_id, pseudonym in self.by_record.items()}

    def save(self, path: Path) -> None:
        """Write atomically and durably (temporary file, fsync, rename, fsync of the folder),
        readable by the owner only: the map is the agency's secret."""
        tmp = path.with_name(path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            os.fchmod(fd, 0o600)  # O_CREAT's mode does not apply to a stale temporary file
            writer = csv.writer(handle)
            writer.writerow(["pseudonym", "record_id"])
            if _PLAIN.fullmatch("".join(self.by_record)):  # nothing to quote: write lines as such
                # pseudonyms are distinct and of one length: sorting the lines sorts by pseudonym
                lines = map("{},{}\r\n".format, self.by_record.values(), self.by_record.keys())
                handle.write("".join(sorted(lines)))
            else:
                order = sorted(self.by_record, key=self.by_record.__getitem__)
                writer.writerows((self.by_record[r], r) for r in order)
            handle.flush()
            os.fsync(fd)  # on disk before the rename makes it the map (a power cut)
        tmp.replace(path)
        sync_folder(path.parent)


def sync_folder(folder: Path) -> None:
    """fsync a folder, so that a rename or removal in it survives a power cut."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
