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
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from itertools import repeat
from pathlib import Path

import numpy as np
import numpy.typing as npt
from numpy.lib.stride_tricks import sliding_window_view

from keys.errors import InputError
from policies.clks import PSEUDONYM_BYTES

_PLAIN = re.compile(r'[^",\r\n]*')  # CSV fields that need no quoting
_HEADER = b"pseudonym,record_id\r\n"
_NIBBLE = np.full(256, 255, dtype=np.uint8)  # a lower-case hex digit's value; 255: not one
_NIBBLE[np.frombuffer(b"0123456789abcdef", dtype=np.uint8)] = np.arange(16)
_LINES_PER_BLOCK = 1 << 15  # a first map's lines are made and written this many at a time


@dataclass
class _Entries:
    """A map held as arrays: distinct record IDs, and their raw pseudonyms in the same order
    (:data:`PSEUDONYM_BYTES` each); ``index`` (record ID -> position) is made when needed."""

    record_ids: list[str]
    raw: bytes
    index: dict[str, int] | None = None

    def positions(self, record_ids: Sequence[str]) -> npt.NDArray[np.intp] | None:
        """Each record's position, new records added with fresh pseudonyms (a new ID met
        twice gets one); None where the entries' IDs repeat (a map edited by hand)."""
        if self.index is None:
            self.index = dict(zip(self.record_ids, range(len(self.record_ids)), strict=True))
            if len(self.index) != len(self.record_ids):
                return None
        index = self.index
        at = np.fromiter(map(index.get, record_ids, repeat(-1)), np.intp, len(record_ids))
        new = np.flatnonzero(at < 0)
        if new.size:
            fresh = list(dict.fromkeys(record_ids[i] for i in new.tolist()))
            start = len(self.record_ids)
            index.update(zip(fresh, range(start, start + len(fresh)), strict=True))
            self.record_ids += fresh
            self.raw += secrets.token_bytes(PSEUDONYM_BYTES * len(fresh))
            at[new] = [index[record_ids[i]] for i in new.tolist()]
        return at

    def pseudonyms(self, at: npt.NDArray[np.intp]) -> bytes:
        pairs = np.frombuffer(self.raw, dtype=np.uint64).reshape(-1, PSEUDONYM_BYTES // 8)
        return pairs[at].tobytes()


class PseudonymMap:
    """record ID <-> pseudonym (hex), loaded from and saved to a CSV file.

    A map is held as arrays (:class:`_Entries`: a first encoding's drawn pseudonyms, or a
    saved map of plain lines as loaded) until ``by_record`` is asked for, so that re-encoding
    looks records up, and saves the map, without a dictionary of a million strings
    (:func:`_entry_lines`); a map that gained no record since it was loaded is not rewritten."""

    def __init__(self, by_record: dict[str, str] | None = None) -> None:
        self._by_record: dict[str, str] = dict(by_record or {})
        self._entries: _Entries | None = None if by_record else _Entries([], b"")
        self._answer: tuple[list[str], bytes] | None = None  # the last pseudonyms_for
        self._entry_lines: bytes | None = None  # the saved form of the entries, made ahead
        self._stage_at: Path | None = None  # where prepare() may write the map ahead of save()
        self._staged: Path | None = None  # the map file whose temporary file holds this map
        self._holds: Path | None = None  # a file that holds this map as it is (loaded, saved)

    @property
    def by_record(self) -> dict[str, str]:
        """record ID -> pseudonym (hex)."""
        self.discard_staged()  # the caller may change the map: a staged copy would be stale
        self._holds = self._answer = self._entry_lines = None
        if self._entries is not None:
            entries, self._entries = self._entries, None
            hexed = _hex_pseudonyms(entries.raw)
            self._by_record.update(zip(entries.record_ids, hexed, strict=True))
        return self._by_record

    @classmethod
    def load(cls, path: Path) -> PseudonymMap:
        if not path.exists():
            return cls()
        try:
            data = path.read_bytes()
            entries = _plain_entries(data)
            if entries is not None:
                loaded = cls()
                loaded._entries = entries
            else:
                text = data.decode("utf-8").lstrip("\ufeff")
                rows = list(csv.DictReader(io.StringIO(text, newline="")))
                loaded = cls({row["record_id"]: row["pseudonym"] for row in rows})
        except (OSError, UnicodeDecodeError, KeyError, csv.Error):
            raise InputError(
                f"the pseudonym map {path} is unreadable",
                fix="restore it from backup; without it, records get new pseudonyms",
            ) from None
        loaded._holds = path
        return loaded

    def pseudonym_for(self, record_id: str) -> str:
        existing = self.by_record.get(record_id)
        if existing is None:
            existing = secrets.token_bytes(PSEUDONYM_BYTES).hex()
            self.by_record[record_id] = existing
        return existing

    def pseudonyms_for(self, record_ids: list[str]) -> bytes:
        """The pseudonyms of many records, raw and concatenated (new ones drawn in one go)."""
        answer = self._answer  # its IDs a copy: the caller's list may change after the call
        if answer is not None and answer[0] == record_ids:
            return answer[1]
        entries = self._entries
        first = entries is not None and not entries.record_ids
        if first and len(set(record_ids)) == len(record_ids):  # a first map, IDs distinct
            return self._draw(record_ids)
        known = 0 if entries is None else len(entries.record_ids)
        at = None if entries is None else entries.positions(record_ids)
        if entries is not None and at is not None:
            raw = entries.pseudonyms(at)
            if len(entries.record_ids) != known:  # new records: files made before are stale
                self._changed()
        else:
            raw = self._from_dictionary(record_ids)
        self._answer = (list(record_ids), raw)
        return raw

    def _draw(self, record_ids: list[str]) -> bytes:
        """A first map: every record's pseudonym drawn at once (the IDs are distinct)."""
        pool = secrets.token_bytes(PSEUDONYM_BYTES * len(record_ids))
        self._entries = _Entries(list(record_ids), pool)
        self._changed()
        self._answer = (list(record_ids), pool)
        return pool

    def _from_dictionary(self, record_ids: list[str]) -> bytes:
        known = self.by_record
        distinct = list(dict.fromkeys(record_ids))
        fresh = [r for r in distinct if r not in known] if known else distinct
        pool = secrets.token_bytes(PSEUDONYM_BYTES * len(fresh))
        known.update(zip(fresh, _hex_pseudonyms(pool), strict=True))
        if len(fresh) == len(record_ids):  # all new and distinct: the pool is the answer
            return pool
        return bytes.fromhex("".join(map(known.__getitem__, record_ids)))

    def _changed(self) -> None:
        """The entries gained records: files made of them before are stale."""
        self.discard_staged()
        self._holds = self._entry_lines = None

    def prepare(self, record_ids: list[str], *, distinct: bool = False) -> None:
        """Look up or draw the records' pseudonyms and, where the map changed, make its saved
        form now (for a process that has time to spare before :meth:`pseudonyms_for` and
        :meth:`save`); ``distinct``: the caller has checked that no record ID repeats."""
        entries = self._entries
        if distinct and entries is not None and not entries.record_ids:
            self._draw(record_ids)
        self.pseudonyms_for(record_ids)
        if self._entries is None or self._holds is not None:  # a dictionary, or unchanged
            return
        if self._stage_at is not None:  # written now, block by block, not kept
            self._write_temporary(self._stage_at, _entry_lines(self._entries))
            self._staged = self._stage_at
        else:
            lines = _entry_lines(self._entries)
            self._entry_lines = None if lines is None else b"".join(lines)

    def stage_at(self, path: Path) -> None:
        """Let :meth:`prepare` write a changed map to ``path``'s temporary file and fsync it,
        so that :meth:`save` to ``path`` is left only the rename (the write and fsync then
        happen while the other process is still encoding). Until :meth:`save`, ``path`` itself
        is untouched; :meth:`discard_staged` removes the temporary file when the run fails."""
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
        readable by the owner only: the map is the agency's secret. A map loaded from ``path``
        and unchanged since is left as it is."""
        if self._holds == path and path.exists():
            return
        if self._staged != path:  # not written ahead by prepare(): write it now
            self.discard_staged()
            lines: Iterable[bytes] | None = None
            if self._entries is not None:
                made = self._entry_lines
                lines = _entry_lines(self._entries) if made is None else [made]
            self._write_temporary(path, lines)
        self._staged = None
        _temporary(path).replace(path)
        sync_folder(path.parent)
        self._holds = path

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


def _plain_entries(data: bytes) -> _Entries | None:
    """A saved map's entries, where every line is as :meth:`PseudonymMap.save` writes a plain
    one (``pseudonym,record_id\\r\\n``: 32 lower-case hex digits, an ID of plain ASCII);
    None for any other file, which the caller reads as CSV. Checked with numpy, not a regular
    expression, which took half a second for a million lines."""
    if not data.startswith(_HEADER) or not data.isascii() or b'"' in data or b"\0" in data:
        return None
    body, width = np.frombuffer(data, dtype=np.uint8)[len(_HEADER) :], 2 * PSEUDONYM_BYTES
    ends = np.flatnonzero(body == ord("\n"))  # each line's LF
    lines = len(ends)
    if not lines or ends[-1] != body.size - 1:  # no line, or a last line without CRLF
        return None if body.size else _Entries([], b"")
    starts = np.concatenate(([0], ends[:-1] + 1))
    if np.any(ends - starts < width + 2) or np.any(body[ends - 1] != ord("\r")):
        return None  # too short for a pseudonym, a comma and CRLF; or LF without CR
    if np.count_nonzero(body == ord("\r")) != lines or np.any(body[starts + width] != ord(",")):
        return None  # CR within a line, or no comma after 32 characters
    if np.count_nonzero(body == ord(",")) != lines:  # an ID with a comma is quoted
        return None
    nibbles = _NIBBLE[sliding_window_view(body, width)[starts]]  # each line's first 32
    if np.any(nibbles > 15):  # not all lower-case hex digits
        return None
    raw = (nibbles[:, 0::2] << 4 | nibbles[:, 1::2]).tobytes()
    text = data[len(_HEADER) :].decode("ascii").split("\r\n")[:-1]
    return _Entries([line[width + 1 :] for line in text], raw)


def _hex_pseudonyms(raw: bytes) -> list[str]:
    """Raw pseudonyms, one after another, as hex strings, one each."""
    hexed, width = raw.hex(), 2 * PSEUDONYM_BYTES
    return [hexed[i : i + width] for i in range(0, len(hexed), width)]


def _temporary(path: Path) -> Path:
    return path.with_name(path.name + ".tmp")


def _entry_lines(entries: _Entries) -> Iterator[bytes] | None:
    """The map's lines (``pseudonym,record_id\\r\\n``, by pseudonym) as :meth:`PseudonymMap.save`
    writes them, made with numpy from the raw pseudonyms, a block of lines at a time (each
    block's arrays are reused, so they stay in the cache and cost no fresh memory); None where
    an ID is not plain ASCII (the caller then writes line by line)."""
    record_ids, pool = entries.record_ids, entries.raw
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
