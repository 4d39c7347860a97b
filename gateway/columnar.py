"""Reading a large, plain CSV file column by column with pyarrow's multi-threaded C++ reader.

The csv module makes a Python string of every cell and a list of every row; an extract of a
million records has eight million cells but only a few hundred thousand distinct values. Here
the cells stay in Arrow buffers, and a column becomes Python strings only as a code book (its
distinct values, found by Arrow's hash-based dictionary encoding, and each row's index), or
whole where a caller asks for every value (record IDs).

Only plain files take this path, where Arrow reads exactly what the csv module reads: UTF-8
(a byte order mark dropped), no quote character and no NUL byte anywhere, a header of distinct
names, and every row as wide as the header (blank lines are skipped by both). For any other
file :func:`read_plain_csv` returns None and the caller reads it with the csv module, which
pads, cuts or refuses as it always has (tests check that both readings agree).
"""

from __future__ import annotations

import mmap
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, overload

import numpy as np
import numpy.typing as npt

from gateway.codebook import Rows

if TYPE_CHECKING:
    import pyarrow

ARROW_MIN_BYTES = 1 << 20  # smaller files: the csv module is quick, and pyarrow's import is not
_BOM = b"\xef\xbb\xbf"
# bytes that may be (part of) whitespace, which str.strip would drop: ASCII's, and non-ASCII
_NOT_PLAIN = np.array([chr(c).isspace() or c >= 128 for c in range(256)], dtype=np.bool_)


class ArrowColumn(Sequence[str]):
    """One CSV column held by Arrow (in the reader's chunks); a sequence of its values as
    Python strings."""

    def __init__(self, column: pyarrow.ChunkedArray) -> None:
        self._column = column
        self._groups: dict[int, npt.NDArray[np.int64]] = {}  # value_groups, by their number

    def __len__(self) -> int:
        return len(self._column)

    @property
    def chunks(self) -> int:
        """The number of blocks Arrow's reader made (in parallel) of this column."""
        return int(self._column.num_chunks)

    @overload
    def __getitem__(self, index: int) -> str: ...
    @overload
    def __getitem__(self, index: slice) -> list[str]: ...
    def __getitem__(self, index: int | slice) -> str | list[str]:
        if isinstance(index, slice):
            if index.step in (None, 1):
                part: list[str] = self._column[index].to_pylist()
                return part
            return self.tolist()[index]
        if not -len(self) <= index < len(self):
            raise IndexError(index)
        value: str = self._column[index].as_py()
        return value

    def group(self, part: int, parts: int) -> tuple[npt.NDArray[np.intp], ArrowColumn]:
        """The rows whose value falls in group ``part`` of ``parts`` (:func:`value_groups`),
        and their values, still held by Arrow."""
        import pyarrow as pa

        if parts not in self._groups:  # made once for all of this column's groups
            self._groups[parts] = value_groups(self._column, parts)
        rows = np.flatnonzero(self._groups[parts] == part).astype(np.int64)
        # the row numbers as an Arrow array over numpy's buffer: converting the numpy array
        # instead would import pandas (over half a second)
        indices = pa.Array.from_buffers(pa.int64(), len(rows), [None, pa.py_buffer(rows)])
        return rows, ArrowColumn(_call("take", [self._column, indices]))

    def plain(self) -> bool:
        """Whether every value is non-empty ASCII without whitespace (record IDs that need no
        stripping, and none of them empty)."""
        for chunk in self._column.chunks:
            _, offsets_buffer, data_buffer = chunk.buffers()
            count = len(chunk)
            offsets = np.frombuffer(offsets_buffer, np.int32, count + 1, offset=4 * chunk.offset)
            if chunk.null_count or data_buffer is None or (np.diff(offsets) == 0).any():
                return False
            if _NOT_PLAIN[np.frombuffer(data_buffer, np.uint8)[offsets[0] : offsets[-1]]].any():
                return False
        return True

    def __iter__(self) -> Iterator[str]:
        return iter(self.tolist())

    def tolist(self) -> list[str]:
        """Every value, in row order."""
        values: list[str] = self._column.to_pylist()
        return values

    def book(self) -> tuple[list[str], Rows]:
        """Distinct values in first-seen order, and each row's index into them (as
        :func:`gateway.codebook.distinct` gives them, without a Python string per cell)."""
        chunks = _dictionary_encode(self._column).chunks
        if not chunks:
            return [], np.zeros(0, dtype=np.int64)
        dictionary = chunks[-1].dictionary
        if len({_identity(chunk.dictionary) for chunk in chunks}) > 1:  # not one shared memo
            whole = _dictionary_encode(self._column.combine_chunks())
            dictionary, chunks = whole.dictionary, [whole]
        rows = np.concatenate([_indices(chunk.indices) for chunk in chunks]).astype(np.int64)
        unique: list[str] = dictionary.to_pylist()
        return unique, rows


def _dictionary_encode(values: Any) -> Any:
    return _call("dictionary_encode", [values])


def _call(kernel: str, arguments: list[Any]) -> Any:
    """An Arrow compute kernel, called without importing ``pyarrow.compute`` (whose import
    makes Python wrappers and docstrings for every kernel: about a tenth of a second, more
    than a call takes on a hundred thousand rows)."""
    try:
        from pyarrow._compute import call_function
    except ImportError:  # a pyarrow that moved its kernel module: the public name
        from pyarrow.compute import call_function
    return call_function(kernel, arguments)


def value_groups(column: pyarrow.ChunkedArray, parts: int) -> npt.NDArray[np.int64]:
    """Each row's group (0 .. ``parts`` - 1), a function of its value's bytes alone (length,
    first byte, last two bytes, mixed by a multiply): equal values always share a group, so
    that the groups of a column can be normalised and encoded apart without any value
    twice. Null counts as empty."""
    out = [_chunk_groups(chunk, parts) for chunk in column.chunks]
    return np.concatenate(out) if out else np.zeros(0, dtype=np.int64)


def _chunk_groups(chunk: pyarrow.Array, parts: int) -> npt.NDArray[np.int64]:
    count = len(chunk)
    validity, offsets_buffer, data_buffer = chunk.buffers()
    offsets = np.frombuffer(offsets_buffer, np.int32, count=count + 1, offset=4 * chunk.offset)
    ends = offsets[1:].astype(np.int64)
    lengths = ends - offsets[:-1]
    if chunk.null_count:  # validity bits, least significant first
        valid = np.unpackbits(np.frombuffer(validity, np.uint8), bitorder="little")
        lengths[~valid[chunk.offset : chunk.offset + count].astype(np.bool_)] = 0
    data = np.frombuffer(data_buffer, np.uint8) if data_buffer is not None else None
    key = lengths.astype(np.uint64)
    for at, needed in ((ends - lengths, 1), (ends - 1, 1), (ends - 2, 2)):
        byte = np.zeros(count, np.uint64)
        if data is not None and len(data):  # else every value is empty
            byte = np.where(lengths >= needed, data[np.clip(at, 0, len(data) - 1)], 0)
        key = (key << np.uint64(8)) | byte.astype(np.uint64)
    mixed = (key * np.uint64(0x9E3779B97F4A7C15)) >> np.uint64(32)
    return (mixed % np.uint64(parts)).astype(np.int64)


def _identity(dictionary: pyarrow.Array) -> tuple[int, ...]:
    return len(dictionary), *(b.address for b in dictionary.buffers() if b is not None)


def _indices(indices: pyarrow.Array) -> npt.NDArray[np.integer[Any]]:
    """A dictionary's indices (no nulls) as numpy, without copying (nor importing pandas,
    as ``to_numpy`` would)."""
    width = indices.type.bit_width // 8
    dtype = np.dtype(f"<i{width}")
    data = indices.buffers()[1]
    return np.frombuffer(data, dtype=dtype, count=len(indices), offset=width * indices.offset)


def _line_end(data: mmap.mmap, start: int) -> int:
    """Where the line from ``start`` ends (its CR or LF; the end of the data if none)."""
    ends = [i for i in (data.find(b"\r", start), data.find(b"\n", start)) if i >= 0]
    return min(ends, default=len(data))


def _plain_header(data: mmap.mmap, start: int) -> list[str] | None:
    """The header's names (the line from ``start``), where the file is plain enough for
    Arrow (see the module)."""
    if data.find(b"\0", start) >= 0 or data[start : start + 1] in (b"\r", b"\n", b""):
        return None
    line = data[start : _line_end(data, start)]
    if b'"' in line:
        return None
    try:
        header = line.decode("utf-8").split(",")
    except UnicodeDecodeError:
        return None
    return header if len(set(header)) == len(header) else None


def read_plain_csv(
    path: Path, *, min_bytes: int = ARROW_MIN_BYTES
) -> tuple[list[str], dict[str, ArrowColumn]] | None:
    """Header and columns of a plain CSV file of at least ``min_bytes``; None for any other
    file (small, unreadable, quoted, ragged, not UTF-8...), which the caller reads itself.
    The file is mapped, not read: Arrow parses the pages the operating system already holds
    (a copy of a large extract would be as many megabytes of fresh memory)."""
    try:
        if path.stat().st_size < min_bytes:
            return None
        with path.open("rb") as handle:
            data = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
    except (OSError, ValueError):
        return None
    start = len(_BOM) if data[: len(_BOM)] == _BOM else 0
    header = _plain_header(data, start)
    if header is None:
        return None
    table = _arrow_table(data, _line_end(data, start), header)
    if table is None:
        return None
    return header, {name: ArrowColumn(table.column(i)) for i, name in enumerate(header)}


def _arrow_table(data: mmap.mmap, body_start: int, header: list[str]) -> Any:
    import pyarrow as pa
    import pyarrow.csv as pa_csv

    body = memoryview(data)[body_start:]
    types = {name: pa.string() for name in header}
    try:
        table = pa_csv.read_csv(
            pa.BufferReader(pa.py_buffer(body)),
            read_options=pa_csv.ReadOptions(column_names=header),
            parse_options=pa_csv.ParseOptions(newlines_in_values=True),
            convert_options=pa_csv.ConvertOptions(
                column_types=types, strings_can_be_null=False, quoted_strings_can_be_null=False
            ),
        )
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None
    return table
