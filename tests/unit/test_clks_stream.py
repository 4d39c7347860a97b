"""The streaming ``.clks`` reader and writer agree with the whole-body ones: any body, held in
any chunking and read in any block size, gives the records :func:`load_clks` gives, and any
body :func:`load_clks` refuses (truncated, altered, extended) is refused with an InputError."""

from __future__ import annotations

import io
import itertools
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from keys.errors import InputError
from policies.clks import EncodedBatch, load_clks
from policies.clks import dump_clks as dump
from policies.clks_stream import (
    BytesSource,
    FileSource,
    iter_clks,
    read_clks_header,
    write_clks,
)
from tests.unit.test_policies import _assert_same_batch, batches


def chunked(data: bytes, cuts: list[int]) -> BytesSource:
    points = sorted({c % (len(data) + 1) for c in cuts})
    bounds = [0, *points, len(data)]
    return BytesSource(*(data[a:b] for a, b in itertools.pairwise(bounds)))


def streamed(source: Any, block: int) -> EncodedBatch:
    """The blocks of the streaming reader joined into one batch."""
    blocks = list(iter_clks(source, block_records=block))
    first = blocks[0]
    return EncodedBatch(
        schema_hash=first.schema_hash, policy_id=first.policy_id,
        policy_version=first.policy_version, epoch=first.epoch, fields=first.fields,
        attribute_names=first.attribute_names,
        pseudonyms=np.vstack([b.pseudonyms for b in blocks]),
        present=np.vstack([b.present for b in blocks]),
        values={f.name: np.vstack([b.values[f.name] for b in blocks]) for f in first.fields},
        attributes=[row for b in blocks for row in b.attributes],
    )  # fmt: skip


CUTS = st.lists(st.integers(min_value=0), max_size=8)


@settings(max_examples=150, deadline=None)
@given(batch=batches(max_records=12), cuts=CUTS, block=st.integers(1, 5))
def test_any_chunking_and_block_size_reads_the_same_records(
    batch: EncodedBatch, cuts: list[int], block: int
) -> None:
    data = dump(batch)
    got = streamed(chunked(data, cuts), block)
    _assert_same_batch(got, load_clks(data))
    assert dump(got) == data
    assert read_clks_header(BytesSource(data)).record_count == len(batch)


@settings(max_examples=150, deadline=None)
@given(batch=batches(max_records=4), cut=st.integers(min_value=0), cuts=CUTS)
def test_every_truncation_is_refused_like_load_clks(
    batch: EncodedBatch, cut: int, cuts: list[int]
) -> None:
    data = dump(batch)
    short = data[: cut % len(data)]
    with pytest.raises(InputError):
        load_clks(short)
    with pytest.raises(InputError) as caught:
        streamed(chunked(short, cuts), 2)
    assert "not a valid .clks" in caught.value.message and caught.value.fix


@settings(max_examples=200, deadline=None)
@given(
    batch=batches(max_records=4),
    position=st.integers(min_value=0),
    value=st.integers(0, 255),
    extra=st.binary(max_size=3),
    block=st.integers(1, 3),
)
def test_an_altered_body_is_refused_exactly_when_load_clks_refuses_it(
    batch: EncodedBatch, position: int, value: int, extra: bytes, block: int
) -> None:
    data = bytearray(dump(batch))
    data[position % len(data)] = value
    body = bytes(data) + extra
    try:
        want: EncodedBatch | None = load_clks(body)
    except InputError:
        want = None
    if want is None:
        with pytest.raises(InputError):
            streamed(BytesSource(body), block)
    else:
        _assert_same_batch(streamed(BytesSource(body), block), want)


@pytest.mark.parametrize(
    "table",
    [b'[["a"] , ["b"]]', b' [["a"],["b"]] ', b'[\n["a"],\n["b"]\n]', b'[["\\u00e9"],[null]]'],
)
def test_attribute_tables_with_space_or_escapes_read_as_json_reads_them(table: bytes) -> None:
    batch = EncodedBatch(
        "ab", "p", "1", 0, (), ("area",), np.zeros((2, 16), np.uint8), np.zeros((2, 0), bool),
        {}, [["x"], ["y"]],
    )  # fmt: skip
    data = dump(batch)
    body = data[: -(len(b'[["x"],["y"]]') + 4)] + len(table).to_bytes(4, "big") + table
    assert streamed(BytesSource(body), 1).attributes == load_clks(body).attributes


@settings(max_examples=60, deadline=None)
@given(batch=batches(max_records=12), block=st.integers(1, 5))
def test_write_clks_writes_the_bytes_dump_clks_makes(batch: EncodedBatch, block: int) -> None:
    out = io.BytesIO()
    assert write_clks(batch, out, block_records=block) == len(dump(batch))
    assert out.getvalue() == dump(batch)
    _assert_same_batch(streamed(FileSource(out), block), batch)


@settings(max_examples=60, deadline=None)
@given(batch=batches(max_records=12), block=st.integers(1, 5), threads=st.integers(2, 3))
def test_write_clks_in_threads_writes_the_same_bytes_to_a_file(
    tmp_path_factory: pytest.TempPathFactory, batch: EncodedBatch, block: int, threads: int
) -> None:
    """Threads fill and write blocks at their own offsets; the file is what dump_clks makes,
    and its position is at the end, for what follows."""
    path = tmp_path_factory.mktemp("clks") / "a.clks"
    with path.open("wb") as handle:
        handle.write(b"x")  # the section starts past whatever the file already holds
        written = write_clks(batch, handle, block_records=block, threads=threads)
        assert handle.tell() == 1 + written
        handle.write(b"y")
    assert written == len(dump(batch))
    assert path.read_bytes() == b"x" + dump(batch) + b"y"
    with path.open("ab") as handle:  # appending: written in order, as one thread writes
        write_clks(batch, handle, block_records=block, threads=threads)
    assert path.read_bytes() == b"x" + dump(batch) + b"y" + dump(batch)
