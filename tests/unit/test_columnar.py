"""Arrow's reading of a plain CSV file is the csv module's reading, value for value.

:mod:`gateway.columnar` reads large files with pyarrow; :func:`read_csv_columns` reads every
other file with the csv module. Where Arrow takes a file (quoted fields, doubled quotes, stray
quotes, CR/LF/CRLF line ends, blank lines, non-ASCII text) it must give the same header and
values, and its code books the same distinct values and row indices as :func:`distinct`.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import random
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway import columnar
from gateway.codebook import distinct
from gateway.columnar import ArrowColumn, read_plain_csv
from gateway.mapping import canonical_mapping
from gateway.records import normalise_columns, read_csv_columns


def _csv_module(text: str) -> tuple[list[str], dict[str, list[str]]]:
    """The csv module's reading, as read_csv_columns makes it for files Arrow does not take."""
    reader = csv.reader(io.StringIO(text, newline=""))
    header = next(reader, [])
    rows = [(r + [""] * len(header))[: len(header)] for r in reader if r]
    return header, {name: [row[i] for row in rows] for i, name in enumerate(header)}


CELL = st.text(alphabet=st.sampled_from(list('ab ,"\r\né1\t')), max_size=6)
STRAY = st.sampled_from(['"a', 'a"', '"a"b', 'a"b', '" a"', ' "a"', '"a" ', '""', '"""'])
LINE_END = st.sampled_from(["\n", "\r\n", "\r"])


@st.composite
def csv_texts(draw: st.DrawFn) -> str:
    """CSV text: rows written by the csv module, or cells joined as found in the wild (stray
    quotes, unquoted separators), with blank lines and any line ends."""
    header = draw(st.lists(st.sampled_from(["a", "b", "record_id", "é"]), min_size=1, max_size=3))
    end = draw(LINE_END)
    lines = [",".join(header)]
    for _ in range(draw(st.integers(0, 6))):
        cells = draw(st.lists(CELL | STRAY, min_size=0, max_size=len(header) + 1))
        if draw(st.booleans()):
            buffer = io.StringIO(newline="")
            csv.writer(buffer, lineterminator="").writerow(cells)
            lines.append(buffer.getvalue())
        else:
            lines.append(",".join(cells))
    return end.join(lines) + draw(st.sampled_from(["", end]))


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(text=csv_texts(), bom=st.booleans())
def test_arrow_reads_what_the_csv_module_reads(tmp_path: Path, text: str, bom: bool) -> None:
    path = tmp_path / "in.csv"
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + text.encode("utf-8"))
    arrow = read_plain_csv(path, min_bytes=0)
    if arrow is None:  # refused: the csv module reads it (ragged rows, duplicate names...)
        return
    header, columns = arrow
    assert (header, {name: column.tolist() for name, column in columns.items()}) == _csv_module(
        text
    )
    for column in columns.values():
        unique, rows = column.book()
        want_unique, want_rows = distinct(column.tolist())
        assert unique == want_unique and rows.tolist() == want_rows.tolist()


def test_refused_files_are_left_to_the_csv_module(tmp_path: Path) -> None:
    path = tmp_path / "in.csv"
    for body in (b"a,b\n1,2\n3\n", b"a,a\n1,2\n", b'"a",b\n1,2\n', b"a,b\n1,\xff\n", b"a\n\0\n"):
        path.write_bytes(body)
        assert read_plain_csv(path, min_bytes=0) is None
    path.write_bytes(b"a,b\n1,2\n")
    assert read_plain_csv(path) is None  # small: not worth importing pyarrow
    assert read_plain_csv(tmp_path / "absent.csv", min_bytes=0) is None


def _large_extract(path: Path, rows: int) -> str:
    """A ~3 MB extract with repeating values, quoted addresses and odd spellings."""
    pick = random.Random(3)
    names = ["ANN", "Bob", " carl ", "DÉSIRÉE", "", "o'neil"]
    lines = ["record_id,given_name,date_of_birth,address,nhs_number"]
    for row in range(rows):
        day = dt.date(1950, 1, 1) + dt.timedelta(days=pick.randrange(20_000))
        address = f'"FLAT {pick.randrange(9)}, {pick.randrange(999)} HIGH ST"'
        nhs = str(pick.randrange(10**9, 10**10)) if pick.random() < 0.6 else ""
        lines.append(f"R{row},{pick.choice(names)},{day.isoformat()},{address},{nhs}")
    text = "\r\n".join(lines) + "\r\n"
    path.write_text(text, encoding="utf-8", newline="")
    return text


def test_a_large_file_is_read_in_chunks_and_normalised_as_before(tmp_path: Path) -> None:
    path = tmp_path / "extract.csv"
    text = _large_extract(path, 60_000)
    header, columns = read_csv_columns(path)
    address = columns["address"]
    assert all(isinstance(column, ArrowColumn) for column in columns.values())
    assert isinstance(address, ArrowColumn) and address.chunks > 1  # code books span chunks
    want_header, want = _csv_module(text)
    assert header == want_header
    assert {name: list(column) for name, column in columns.items()} == want
    assert address[:5000] == want["address"][:5000] and address[-3:] == want["address"][-3:]
    assert address[7] == want["address"][7] and address[1::2] == want["address"][1::2]
    mapping = canonical_mapping("extract", header)
    today = dt.date(2027, 1, 1)
    fast = normalise_columns(columns, 60_000, mapping, today=today)
    slow = normalise_columns(want, 60_000, mapping, today=today)
    assert fast.record_ids == slow.record_ids and fast.values == slow.values
    assert {k: vars(v) for k, v in fast.report.items()} == {
        k: vars(v) for k, v in slow.report.items()
    }
    for name in fast.coded:
        assert np.array_equal(fast.coded[name].rows, slow.coded[name].rows)


def test_chunks_without_one_shared_dictionary_are_encoded_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "extract.csv"
    _large_extract(path, 60_000)
    _, columns = read_csv_columns(path)
    address = columns["address"]
    assert isinstance(address, ArrowColumn) and address.chunks > 1
    shared = address.book()
    chunk_numbers = iter(range(10**6))
    monkeypatch.setattr(columnar, "_identity", lambda dictionary: (next(chunk_numbers),))
    unique, rows = address.book()  # as if each chunk had its own dictionary
    assert unique == shared[0] and np.array_equal(rows, shared[1])


@settings(max_examples=80, deadline=None)
@given(
    ids=st.lists(st.text(alphabet=st.sampled_from(list("P-07 é\t\x1f")), max_size=4), max_size=12)
)
def test_record_ids_held_by_arrow_are_checked_and_stripped_as_a_list_is(ids: list[str]) -> None:
    """Plain IDs (ASCII, no whitespace, none empty) skip the stripping; the answer, or the
    refusal naming the row, is the list's."""
    import pyarrow as pa

    from gateway.records import record_ids_of
    from keys.errors import InputError

    mapping = canonical_mapping("t", ["record_id"])
    held = ArrowColumn(pa.chunked_array([ids[:5], ids[5:]], type=pa.string()))

    def answer(column: object) -> object:
        try:
            return record_ids_of({"record_id": column}, len(ids), mapping, "t")  # type: ignore[dict-item]
        except InputError as error:
            return str(error)

    assert answer(held) == answer(list(ids))
