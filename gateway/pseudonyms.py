"""Per-record pseudonyms: random, made and kept by the node, never derived from record IDs.

The map pseudonym -> record ID is the node's own (``agency.clks.ids`` beside an encoded file,
or the node's state folder); it never leaves the agency. Re-encoding reuses the map, so that a
record keeps its pseudonym, and so its entity, across publications.
"""

from __future__ import annotations

import csv
import io
import os
import re
import secrets
from pathlib import Path

import numpy as np

from keys.errors import InputError
from policies.clks import PSEUDONYM_BYTES

_PLAIN = re.compile(r'[^",\r\n]*')  # CSV fields that need no quoting
_HEADER = b"pseudonym,record_id\r\n"


class PseudonymMap:
    """record ID <-> pseudonym (hex), loaded from and saved to a CSV file.

    A first encoding draws every record's pseudonym at once; those are held as drawn (the
    record IDs and the raw bytes) until ``by_record`` is asked for, so that a map made and
    saved in one go is written straight from them (:func:`_fresh_lines`)."""

    def __init__(self, by_record: dict[str, str] | None = None) -> None:
        self._by_record: dict[str, str] = dict(by_record or {})
        self._drawn: tuple[list[str], bytes] | None = None  # distinct IDs, their raw pseudonyms
        self._drawn_lines: bytes | None = None  # the saved form of a drawn map, made ahead

    @property
    def by_record(self) -> dict[str, str]:
        """record ID -> pseudonym (hex)."""
        if self._drawn is not None:
            record_ids, pool = self._drawn
            self._drawn = self._drawn_lines = None
            hexed, width = pool.hex(), 2 * PSEUDONYM_BYTES
            chunks = [hexed[i : i + width] for i in range(0, len(hexed), width)]
            self._by_record.update(zip(record_ids, chunks, strict=True))
        return self._by_record

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
        if self._drawn is not None and self._drawn[0] == record_ids:  # drawn ahead: prepare()
            return self._drawn[1]
        known = self.by_record
        if not known and len(set(record_ids)) == len(record_ids):  # a first encoding
            pool = secrets.token_bytes(PSEUDONYM_BYTES * len(record_ids))
            self._drawn = (list(record_ids), pool)
            return pool
        distinct = list(dict.fromkeys(record_ids))
        fresh = [r for r in distinct if r not in known] if known else distinct
        pool = secrets.token_bytes(PSEUDONYM_BYTES * len(fresh))
        hexed, width = pool.hex(), 2 * PSEUDONYM_BYTES
        chunks = [hexed[i : i + width] for i in range(0, len(hexed), width)]
        known.update(zip(fresh, chunks, strict=True))
        if len(fresh) == len(record_ids):  # all new and distinct: the pool is the answer
            return pool
        return bytes.fromhex("".join(map(self.by_record.__getitem__, record_ids)))

    def prepare(self, record_ids: list[str], *, distinct: bool = False) -> None:
        """Draw the records' pseudonyms and, for a first map, make its saved form now (for a
        process that has time to spare before :meth:`pseudonyms_for` and :meth:`save`);
        ``distinct``: the caller has checked that no record ID repeats."""
        if distinct and self._drawn is None and not self._by_record:
            pool = secrets.token_bytes(PSEUDONYM_BYTES * len(record_ids))
            self._drawn = (list(record_ids), pool)
        self.pseudonyms_for(record_ids)
        if self._drawn is not None and not self._by_record:
            self._drawn_lines = _fresh_lines(*self._drawn)

    def record_for(self) -> dict[str, str]:
        return {pseudonym: record_id for record_id, pseudonym in self.by_record.items()}

    def save(self, path: Path) -> None:
        """Write atomically and durably (temporary file, fsync, rename, fsync of the folder),
        readable by the owner only: the map is the agency's secret."""
        lines = None
        if self._drawn is not None and not self._by_record:
            lines = self._drawn_lines or _fresh_lines(*self._drawn)
        tmp = path.with_name(path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(fd, 0o600)  # O_CREAT's mode does not apply to a stale temporary file
            handle.write(_HEADER + (self._lines() if lines is None else lines))
            handle.flush()
            os.fsync(fd)  # on disk before the rename makes it the map (a power cut)
        tmp.replace(path)
        sync_folder(path.parent)

    def _lines(self) -> bytes:
        """The lines after the header, ordered by pseudonym, quoted where a value needs it."""
        by_record = self.by_record
        if _PLAIN.fullmatch("".join(by_record)):  # nothing to quote: write lines as such
            # pseudonyms are distinct and of one length: sorting the lines sorts by pseudonym
            lines = map("{},{}\r\n".format, by_record.values(), by_record.keys())
            return "".join(sorted(lines)).encode("utf-8")
        buffer = io.StringIO(newline="")
        order = sorted(by_record, key=by_record.__getitem__)
        csv.writer(buffer).writerows((by_record[r], r) for r in order)
        return buffer.getvalue().encode("utf-8")


def _fresh_lines(record_ids: list[str], pool: bytes) -> bytes | None:
    """The map's lines (``pseudonym,record_id\\r\\n``, by pseudonym) as :meth:`PseudonymMap.save`
    writes them, made with numpy from the raw pseudonyms; None where an ID is not plain ASCII
    (the caller then writes line by line)."""
    joined = "".join(record_ids)
    if not joined or not joined.isascii() or "\0" in joined or not _PLAIN.fullmatch(joined):
        return None
    count, width = len(record_ids), 2 * PSEUDONYM_BYTES
    raw = np.frombuffer(pool, dtype=np.uint8).reshape(count, PSEUDONYM_BYTES)
    high, low = (raw[:, i : i + 8].copy().view(">u8")[:, 0] for i in (0, 8))
    order = np.argsort(high, kind="stable")  # byte order: the order of the hex text
    if np.any(high[order][1:] == high[order][:-1]):  # first eight bytes alike: rare
        order = np.lexsort((low, high))
    text = np.array(record_ids, dtype="S")[order]  # ASCII without NUL, checked above
    lengths = np.strings.str_len(text).astype(np.int64)
    longest = text.dtype.itemsize
    # one row per line, as wide as the longest; the padding after each line's LF is dropped
    lines = np.zeros((count, width + 3 + longest), dtype=np.uint8)
    hexed = raw[order].tobytes().hex().encode("ascii")
    lines[:, :width] = np.frombuffer(hexed, dtype=np.uint8).reshape(count, width)
    lines[:, width] = ord(",")
    lines[:, width + 1 : width + 1 + longest] = text.view(np.uint8).reshape(count, longest)
    if lengths.min() == longest:  # IDs of one length: lines of one length
        lines[:, -2], lines[:, -1] = ord("\r"), ord("\n")
        return lines.tobytes()
    rows, end = np.arange(count), width + 1 + lengths
    lines[rows, end], lines[rows, end + 1] = ord("\r"), ord("\n")
    keep = np.arange(lines.shape[1])[None, :] < (end + 2)[:, None]
    return lines[keep].tobytes()


def sync_folder(folder: Path) -> None:
    """fsync a folder, so that a rename or removal in it survives a power cut."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
