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
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import numpy.typing as npt

from keys.errors import InputError
from policies.clks import PSEUDONYM_BYTES

_PLAIN = re.compile(r'[^",\r\n]*')  # CSV fields that need no quoting
_HEADER = b"pseudonym,record_id\r\n"
_LINES_PER_BLOCK = 1 << 15  # a first map's lines are made and written this many at a time


class PseudonymMap:
    """record ID <-> pseudonym (hex), loaded from and saved to a CSV file.

    A first encoding draws every record's pseudonym at once; those are held as drawn (the
    record IDs and the raw bytes) until ``by_record`` is asked for, so that a map made and
    saved in one go is written straight from them (:func:`_fresh_lines`)."""

    def __init__(self, by_record: dict[str, str] | None = None) -> None:
        self._by_record: dict[str, str] = dict(by_record or {})
        self._drawn: tuple[list[str], bytes] | None = None  # distinct IDs, their raw pseudonyms
        self._drawn_lines: bytes | None = None  # the saved form of a drawn map, made ahead
        self._stage_at: Path | None = None  # where prepare() may write the map ahead of save()
        self._staged: Path | None = None  # the map file whose temporary file holds this map

    @property
    def by_record(self) -> dict[str, str]:
        """record ID -> pseudonym (hex)."""
        self.discard_staged()  # the caller may change the map: a staged copy would be stale
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
            if self._stage_at is not None:  # written now, block by block, not kept
                self._write_temporary(self._stage_at, _fresh_lines(*self._drawn))
                self._staged = self._stage_at
            else:
                lines = _fresh_lines(*self._drawn)
                self._drawn_lines = None if lines is None else b"".join(lines)

    def stage_at(self, path: Path) -> None:
        """Let :meth:`prepare` write a first map to ``path``'s temporary file and fsync it, so
        that :meth:`save` to ``path`` is left only the rename (the write and fsync then happen
        while the other process is still encoding). Until :meth:`save`, ``path`` itself is
        untouched; :meth:`discard_staged` removes the temporary file when the run fails."""
        self._stage_at = path

    def discard_staged(self) -> None:
        """Remove a temporary file that :meth:`prepare` wrote, if any."""
        if self._staged is not None:
            _temporary(self._staged).unlink(missing_ok=True)
            self._staged = None

    def record_for(self) -> dict[str, str]:
        return {pseudonym: record_id for record_id, pseudonym in self.by_record.items()}

    def save(self, path: Path) -> None:
        """Write atomically and durably (temporary file, fsync, rename, fsync of the folder),
        readable by the owner only: the map is the agency's secret."""
        if self._staged != path:  # not written ahead by prepare(): write it now
            self.discard_staged()
            lines: Iterable[bytes] | None = None
            if self._drawn is not None and not self._by_record:
                made = self._drawn_lines
                lines = _fresh_lines(*self._drawn) if made is None else [made]
            self._write_temporary(path, lines)
        self._staged = None
        _temporary(path).replace(path)
        sync_folder(path.parent)

    def _write_temporary(self, path: Path, lines: Iterable[bytes] | None) -> None:
        """The map (``lines`` after the header; all of :meth:`_lines` when None) in ``path``'s
        temporary file, owner-only, on disk (fsync) before any rename makes it the map (a
        power cut)."""
        fd = os.open(_temporary(path), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(fd, 0o600)  # O_CREAT's mode does not apply to a stale temporary file
            handle.write(_HEADER)
            handle.writelines([self._lines()] if lines is None else lines)
            handle.flush()
            os.fsync(fd)

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


def _temporary(path: Path) -> Path:
    return path.with_name(path.name + ".tmp")


def _fresh_lines(record_ids: list[str], pool: bytes) -> Iterator[bytes] | None:
    """The map's lines (``pseudonym,record_id\\r\\n``, by pseudonym) as :meth:`PseudonymMap.save`
    writes them, made with numpy from the raw pseudonyms, a block of lines at a time (each
    block's arrays are reused, so they stay in the cache and cost no fresh memory); None where
    an ID is not plain ASCII (the caller then writes line by line)."""
    joined = "".join(record_ids)
    if not joined or not joined.isascii() or "\0" in joined or not _PLAIN.fullmatch(joined):
        return None
    count = len(record_ids)
    raw = np.frombuffer(pool, dtype=np.uint8).reshape(count, PSEUDONYM_BYTES)
    high, low = (raw[:, i : i + 8].copy().view(">u8")[:, 0].astype(np.uint64) for i in (0, 8))
    order = np.argsort(high)  # byte order: the order of the hex text
    if np.any(np.diff(high[order]) == 0):  # first eight bytes alike: rare
        order = np.lexsort((low, high))
    return _line_blocks(np.array(record_ids, dtype="S"), raw, order)  # ASCII without NUL


def _line_blocks(
    text: npt.NDArray[np.bytes_], raw: npt.NDArray[np.uint8], order: npt.NDArray[np.intp]
) -> Iterator[bytes]:
    """One row per line, as wide as the longest; the padding after each line's LF is dropped."""
    width, longest = 2 * PSEUDONYM_BYTES, text.dtype.itemsize
    lengths = np.strings.str_len(text)
    pairs = raw.view(np.uint64)  # a pseudonym as two words: a faster gather than 16 bytes
    lines = np.zeros((_LINES_PER_BLOCK, width + 3 + longest), dtype=np.uint8)
    lines[:, width] = ord(",")
    columns = np.arange(lines.shape[1])
    for start in range(0, len(order), _LINES_PER_BLOCK):
        rows = order[start : start + _LINES_PER_BLOCK]
        block, count = lines[: len(rows)], len(rows)
        hexed = pairs[rows].tobytes().hex().encode("ascii")
        block[:, :width] = np.frombuffer(hexed, dtype=np.uint8).reshape(count, width)
        block[:, width + 1 : width + 1 + longest] = text[rows].view(np.uint8).reshape(count, -1)
        end, at = width + 1 + lengths[rows], np.arange(count)
        block[at, end], block[at, end + 1] = ord("\r"), ord("\n")
        yield block[columns[None, :] < (end + 2)[:, None]].tobytes()


def sync_folder(folder: Path) -> None:
    """fsync a folder, so that a rename or removal in it survives a power cut."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
