"""Normalising and encoding a batch's fields in two processes at once.

Fields are independent: each is normalised and encoded from its own column. With
``workers=2`` a forked child and this process share the work in turns, the costliest (by
their number of distinct raw values) first, each taking the next turn free:

- the child first encodes the fields stored as salted copies, all in one turn (what their
  salts are made from is normalised once), and loads numba's compiled loops for them itself,
  while this process checks the record IDs and draws their pseudonyms (and writes a first
  map to disk); loading numba here would hold up the fork by half a second;
- a field of many distinct values that is encoded value by value (the NHS number, the
  address) is four turns, one per group of its values (:func:`gateway.columnar.value_groups`:
  equal values share a group, so no value is normalised or hashed twice), so that both
  processes end together instead of one waiting for the other's last big field.

The child inherits the columns, mapping, context and secret by ``fork`` (nothing is pickled
to it, nothing leaves the machine) and sends back only encoded bytes (through shared memory),
presence flags and counts, plus the normalised values of any field an attribute is generalised
from. The result is byte for byte what one process makes (a test checks it, reports
included): the encoders are deterministic, and pseudonyms are drawn here, not in the child.

Forking is used only where the platform offers it, and only for batches large enough to gain.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import mmap
import multiprocessing
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing.sharedctypes import Synchronized
from typing import Any

import numpy as np
import numpy.typing as npt

from gateway.columnar import ArrowColumn
from gateway.copy_kernels import compiled_loops_alone, use_compiled
from gateway.encode import EncodedColumns, EncodingContext, encode_fields
from gateway.hardening import SALT_SOURCES
from gateway.mapping import ColumnMapping
from gateway.pseudonyms import PseudonymMap
from gateway.records import (
    Columns,
    FieldReport,
    NormalisedRecords,
    NormalValue,
    enforce_strict,
    normalise_columns,
    record_ids_of,
)
from keys import LinkageSecret
from keys.errors import InputError
from policies.linkage_schema import OTHER_NAME, OTHER_NAME_SALT, FieldSpec

MIN_ROWS_TO_FORK = 20_000
_SAMPLE_ROWS = 5_000
_ROWS_PER_DISTINCT = 25  # rows that cost as much as one distinct value (measured: bench/)
_COPY_ROWS_PER_DISTINCT = 5  # salted-copy rows that cost as much (each row is hashed)
_PARTS_FROM = 0.2  # a field's cost over its rows from which it is encoded in groups
_PARTS = 4  # groups of values: small enough that both processes end together


@dataclass(frozen=True)
class _Job:
    columns: Columns
    count: int
    mapping: ColumnMapping
    secret: LinkageSecret
    context: EncodingContext
    today: dt.date
    where: str
    record_ids: list[str] | None  # None in the child, which checks them only if it must
    order: list[Turn]  # the work, costliest first: each process takes the next turn free
    child_first: list[str]  # fields the child encodes before it takes from ``order``
    taken: Synchronized[int]  # how many of ``order`` are taken, shared by the two processes
    shared: EncodedColumns  # where the child puts its encodings (see _shared_columns)


_JOB: _Job | None = None  # set just before forking; read by the child
Part = tuple[EncodedColumns, dict[str, FieldReport], dict[str, list[NormalValue]]]
Turn = tuple[str, int, int]  # a field, and which group of its values of how many (0 of 1: all)


def _salt_inputs(fields: tuple[FieldSpec, ...], *, copies: bool = True) -> set[str]:
    """Salted fields, and the fields their salts are made from (date of birth, postcode, the
    other name); with ``copies=False``, only those of fields with a single salt."""
    out: set[str] = set()
    for spec in fields:
        for salt in (spec.salt, *(spec.salts if copies else ())):
            if salt:
                out |= {spec.name, SALT_SOURCES[salt]}
                if salt == OTHER_NAME_SALT:
                    out.add(OTHER_NAME[spec.name])
    return out


def _values_kept(context: EncodingContext) -> set[str]:
    """The fields whose per-record values are needed after encoding (attributes are made
    from them) or while encoding (a field with a single salt, and what its salt is made from;
    salted copies read code books, :mod:`gateway.salted_positions`)."""
    return {a.field for a in context.attributes} | _salt_inputs(context.fields, copies=False)


def _turn(job: _Job, name: str, group: int, groups: int) -> Part:
    """Normalise and encode field ``name``: all of it, or (``groups`` > 1) the rows of one
    group of its values (:func:`_field_group`)."""
    return _field_group(job, name, group, groups) if groups > 1 else _part(job, [name])


def _part(job: _Job, names: list[str]) -> Part:
    """Normalise and encode ``names``; keep the values attributes are made from."""
    salted = tuple(spec for spec in job.context.fields if spec.name in names)
    keep = {"record_id", *names, *_salt_inputs(salted)}
    mapping = ColumnMapping(
        job.mapping.source, {k: v for k, v in job.mapping.columns.items() if k in keep}
    )
    fields = tuple(spec for spec in job.context.fields if spec.name in names)
    record_ids = job.record_ids
    if record_ids is None:  # the child: its own copy where an encoding is keyed by record
        keyed = any(spec.blip for spec in fields)
        where, count = job.where, job.count
        record_ids = record_ids_of(job.columns, count, mapping, where) if keyed else [""] * count
    records = normalise_columns(
        job.columns,
        job.count,
        mapping,
        today=job.today,
        where=job.where,
        record_ids=record_ids,
        expand=_values_kept(job.context),
    )
    encoded = encode_fields(
        records, fields, secret=job.secret, context=job.context, into=job.shared
    )
    wanted = {attribute.field for attribute in job.context.attributes}
    return encoded, records.report, {k: v for k, v in records.values.items() if k in wanted}


def _take_turns(job: _Job, first: Sequence[str] = ()) -> Part:
    """Encode the fields ``first``, then take the next free field of ``job.order`` until none
    is left (run by both processes)."""
    done: Part = (EncodedColumns(), {}, {})
    in_parts = _in_parts(job)
    if first:  # together: what their salts are made from is normalised once for all
        _add(done, _part(job, list(first)), in_parts)
    while True:
        with job.taken.get_lock():
            index = job.taken.value
            job.taken.value = index + 1
        if index >= len(job.order):
            return done
        _add(done, _turn(job, *job.order[index]), in_parts)


def _in_parts(job: _Job) -> set[str]:
    """The fields of ``job`` encoded in groups of their values."""
    return {name for name, _, groups in job.order if groups > 1}


def _add(done: Part, part: Part, in_parts: set[str]) -> None:
    """``part`` added to ``done``: a field in parts has its counts summed, any other (a field may
    be normalised more than once: as a field, and as what a salt is made from) replaced."""
    done[0].update(part[0])
    _merge_reports(done[1], part[1], in_parts)
    done[2].update(part[2])


def _merge_reports(
    into: dict[str, FieldReport], reports: dict[str, FieldReport], in_parts: set[str]
) -> None:
    """``reports`` into ``into``: a field in parts has its counts summed, any other replaced."""
    for name, counts in reports.items():
        both = name in in_parts and name in into
        into[name] = _sum(into[name], counts) if both else counts


def _field_group(job: _Job, name: str, group: int, groups: int) -> Part:
    """The rows of a :func:`_splittable` field whose values fall in ``group`` (equal values
    in one group: :func:`gateway.columnar.value_groups`), normalised and encoded on their own
    (the same bytes: the encoders work value by value) into the shared arrays; the report
    counts those rows, numbered as in the whole file."""
    rule = job.mapping.columns[name]
    rows, values = _group_rows(job.columns.get(rule.column, [""] * job.count), group, groups)
    mapping = ColumnMapping(job.mapping.source, {name: rule})
    records = normalise_columns({rule.column: values}, len(rows), mapping, today=job.today,
                                where=job.where, record_ids=[""] * len(rows))  # fmt: skip
    fields = tuple(spec for spec in job.context.fields if spec.name == name)
    encoded = encode_fields(records, fields, secret=job.secret, context=job.context)
    job.shared.values[name][rows] = encoded.values[name]
    job.shared.present[name][rows] = encoded.present[name]
    report = records.report[name]
    report.first_invalid_rows = [int(rows[row - 2]) + 2 for row in report.first_invalid_rows]
    out = EncodedColumns()
    out.values[name], out.present[name] = job.shared.values[name], job.shared.present[name]
    return out, {name: report}, {}


def _group_rows(
    column: Sequence[str], group: int, groups: int
) -> tuple[npt.NDArray[np.intp], Sequence[str]]:
    """The rows of ``column`` whose values fall in ``group``, and those values. A column the
    csv module read is grouped by Python's string hash, which a forked child shares."""
    if isinstance(column, ArrowColumn):
        return column.group(group, groups)
    hashes = np.fromiter(map(hash, column), dtype=np.int64, count=len(column))
    rows = np.flatnonzero(hashes % groups == group)
    return rows, [column[int(i)] for i in rows]


def _sum(one: FieldReport, other: FieldReport) -> FieldReport:
    """The counts of two parts of a field's rows, as one process counts both together."""
    return FieldReport(
        valid=one.valid + other.valid,
        invalid=one.invalid + other.invalid,
        missing=one.missing + other.missing,
        first_invalid_rows=sorted(one.first_invalid_rows + other.first_invalid_rows)[:5],
        unverified=one.unverified + other.unverified,
    )


def _child() -> tuple[list[str], dict[str, FieldReport], dict[str, list[NormalValue]]]:
    """The child's turns; its encodings go into the shared arrays, not through the pipe, and
    it names the fields it encoded (its reports also cover the fields salts are made from)."""
    assert _JOB is not None, "the job is set before the fork"
    if _JOB.child_first:  # fields that run the compiled loops: loaded here, for them alone
        compiled_loops_alone()
    encoded, report, values = _take_turns(_JOB, _JOB.child_first)
    for name, filters in encoded.values.items():
        if filters is not _JOB.shared.values[name]:  # copies and parts are there already
            _JOB.shared.values[name][:] = filters
        if encoded.present[name] is not _JOB.shared.present[name]:
            _JOB.shared.present[name][:] = encoded.present[name]
    return list(encoded.values), report, values


def _checked_ids(job: _Job) -> list[str]:
    """The record IDs, checked while the child starts on the fields; on a bad one, the child
    is told that no field is left before the error is raised."""
    try:
        return record_ids_of(job.columns, job.count, job.mapping, job.where)
    except InputError:
        with job.taken.get_lock():
            job.taken.value = len(job.order)
        raise


def _compiled_in_child(order: list[str], context: EncodingContext, count: int) -> list[str]:
    """The fields with salted copies, where they will run the compiled loops: the child
    encodes them first, and loads the loops (about half a second of importing numba and
    loading its code) itself, while this process checks the record IDs and draws their
    pseudonyms; loading them here would hold up the fork. Empty where the loops do not run
    (numba missing, or a batch too small to pay for them): then every field is free to both."""
    if not use_compiled(count):
        return []
    salted = {spec.name for spec in context.fields if spec.salts}
    return [name for name in order if name in salted]


def _shared_columns(context: EncodingContext, count: int) -> EncodedColumns:
    """Arrays for every encoded field in anonymous shared memory, made before the fork, so
    that the child's encodings (tens of megabytes) come back without a copy through a pipe."""
    out = EncodedColumns()
    for spec in context.fields:
        filters = mmap.mmap(-1, count * spec.nbytes)
        out.values[spec.name] = np.frombuffer(filters, dtype=np.uint8).reshape(count, spec.nbytes)
        out.present[spec.name] = np.frombuffer(mmap.mmap(-1, count), dtype=np.bool_)
    return out


def _costs(
    columns: Columns, count: int, mapping: ColumnMapping, fields: tuple[FieldSpec, ...] = ()
) -> dict[str, float]:
    """Each field's work. The work of a field is mostly one normalising and encoding per
    distinct value, plus a little per row; the number of distinct values in the whole column
    is estimated from a sample of its rows (:func:`_sample`) by the bias-corrected Chao1
    estimator (distinct values, plus those seen once squared over twice those seen twice), so
    that a column of few values that repeat (dates of birth) ranks below one of many (NHS
    numbers), though both look alike in a small sample. A field stored as salted copies
    (``fields``) is hashed row by row as well, each copy."""
    names = [n for n in mapping.columns if n != "record_id"]
    cost = {}
    for name in names:
        seen = Counter(_sample(columns.get(mapping.columns[name].column, ()), count))
        once = sum(1 for times in seen.values() if times == 1)
        twice = sum(1 for times in seen.values() if times == 2)
        distinct = len(seen) + once * (once - 1) / (2 * (twice + 1))
        cost[name] = min(distinct, count) + count / _ROWS_PER_DISTINCT
    for spec in fields:  # a salted copy is made row by row, not per distinct value
        if spec.name in cost:
            cost[spec.name] += count * len(spec.salts) / _COPY_ROWS_PER_DISTINCT
    return cost


def _sample(column: Sequence[str], count: int) -> list[str]:
    """About :data:`_SAMPLE_ROWS` values of ``column``, in ten runs spread over its rows (a
    file may join sources that differ: one agency's rows without NHS numbers, then another's)."""
    run = _SAMPLE_ROWS // 10
    if count <= _SAMPLE_ROWS:
        return list(column[:count])
    starts = [i * count // 10 for i in range(10)]
    return [value for start in starts for value in column[start : start + run]]


def _turns(costs: dict[str, float], count: int, context: EncodingContext) -> list[Turn]:
    """The fields as turns, the costliest first; a :func:`_splittable` field of many distinct
    values (a cost above :data:`_PARTS_FROM` of the rows) as :data:`_PARTS` turns, one per
    group of its values, so that the last big field does not leave one process idle while
    the other works alone."""
    turns: list[tuple[float, Turn]] = []
    for name, cost in costs.items():
        if cost >= _PARTS_FROM * count and name in _splittable(context):
            turns += [(cost / _PARTS, (name, group, _PARTS)) for group in range(_PARTS)]
        else:
            turns.append((cost, (name, 0, 1)))
    turns.sort(key=lambda turn: -turn[0])  # stable: a field's groups stay in order
    return [turn for _, turn in turns]


def _splittable(context: EncodingContext) -> set[str]:
    """Fields that can be encoded a group of values at a time: value by value (not keyed
    by record, no salted copies), their values not kept, and no salt made from them."""
    tied = _values_kept(context) | _salt_inputs(context.fields)
    return {
        spec.name
        for spec in context.fields
        if not spec.salts and not spec.blip and not spec.salt and spec.name not in tied
    }


def forks(workers: int, count: int) -> bool:
    """Whether :func:`normalise_and_encode` shares ``count`` records' fields between two
    processes: asked for, large enough to gain, and on a platform that can fork."""
    can_fork = "fork" in multiprocessing.get_all_start_methods()
    return workers >= 2 and count >= MIN_ROWS_TO_FORK and can_fork


def normalise_and_encode(
    columns: Columns,
    count: int,
    mapping: ColumnMapping,
    *,
    secret: LinkageSecret,
    context: EncodingContext,
    today: dt.date,
    strict: bool = False,
    where: str = "input",
    workers: int = 1,
    pseudonyms: PseudonymMap | None = None,
) -> tuple[NormalisedRecords, EncodedColumns]:
    """Normalised records (values of attribute fields only when forked) and encoded fields.

    With two processes, the fields are shared out as they are free (the costliest first);
    this process first draws the records' ``pseudonyms`` (when given) and makes the saved
    form of a new map, the work that would otherwise follow the encoding."""
    if not forks(workers, count):
        records = normalise_columns(
            columns, count, mapping, today=today, strict=strict, where=where
        )
        return records, encode_fields(records, context.fields, secret=secret, context=context)
    forking = multiprocessing.get_context("fork")
    costs = _costs(columns, count, mapping, context.fields)
    by_cost = sorted(costs, key=costs.__getitem__, reverse=True)
    child_first = _compiled_in_child(by_cost, context, count)
    order = _turns({n: c for n, c in costs.items() if n not in child_first}, count, context)
    shared = _shared_columns(context, count)
    job = _Job(columns, count, mapping, secret, context, today, where, None, order,
               child_first, forking.Value("i", 0), shared)  # fmt: skip
    record_ids, encoded, report, values = _fork_and_share(job, forking, pseudonyms)
    report = {name: report[name] for name in mapping.columns if name in report}
    enforce_strict(report, strict, where)
    records = NormalisedRecords(record_ids, values, report)
    absent = tuple(spec for spec in context.fields if spec.name not in encoded.values)
    if absent:  # fields the file lacks: no turn took them; absent in every record
        nothing = NormalisedRecords(record_ids, {}, {})
        encoded.update(encode_fields(nothing, absent, secret=secret, context=context))
    return records, encoded


def _fork_and_share(
    job: _Job, forking: Any, pseudonyms: PseudonymMap | None
) -> tuple[list[str], EncodedColumns, dict[str, FieldReport], dict[str, list[NormalValue]]]:
    """Both processes' turns at ``job``'s fields; this one checks the record IDs and draws
    their pseudonyms first. The record IDs, encodings, reports and kept values of all fields."""
    global _JOB
    _JOB = job
    try:
        with ProcessPoolExecutor(1, mp_context=forking) as pool:
            future = pool.submit(_child)
            record_ids = _checked_ids(job)
            if pseudonyms is not None:
                pseudonyms.prepare(record_ids, distinct=True)  # as checked
            encoded, report, values = _take_turns(dataclasses.replace(job, record_ids=record_ids))
            child_fields, child_report, child_values = future.result()
    finally:
        _JOB = None
    for name in child_fields:
        encoded.values[name] = job.shared.values[name]
        encoded.present[name] = job.shared.present[name]
    _merge_reports(report, child_report, _in_parts(job))
    return record_ids, encoded, report, {**values, **child_values}
