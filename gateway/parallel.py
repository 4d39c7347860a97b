"""Normalising and encoding a batch's fields in two processes at once.

Fields are independent: each is normalised and encoded from its own column. With
``workers=2`` a forked child takes the costliest fields (by their number of distinct raw
values) while this process takes the rest; the child inherits the columns, mapping, context
and secret by ``fork`` (nothing is pickled to it, nothing leaves the machine) and sends back
only encoded bytes, presence flags and counts, plus the normalised values of any field an
attribute is generalised from. The result is byte for byte what one process makes (a test
checks it): the encoders are deterministic, and pseudonyms are drawn here, not in the child.

Forking is used only where the platform offers it, and only for batches large enough to gain.
"""

from __future__ import annotations

import datetime as dt
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

from gateway.encode import EncodedColumns, EncodingContext, encode_fields
from gateway.hardening import SALT_SOURCES
from gateway.mapping import ColumnMapping
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
from policies.linkage_schema import OTHER_NAME

MIN_ROWS_TO_FORK = 20_000
_SAMPLE_ROWS = 5_000


@dataclass(frozen=True)
class _Job:
    columns: Columns
    count: int
    mapping: ColumnMapping
    secret: LinkageSecret
    context: EncodingContext
    today: dt.date
    where: str
    record_ids: list[str]


_JOB: _Job | None = None  # set just before forking; read by the child


def _part(
    job: _Job, names: list[str]
) -> tuple[EncodedColumns, dict[str, FieldReport], dict[str, list[NormalValue]]]:
    """Normalise and encode ``names``; keep the values attributes are made from."""
    salts = [(s.name, t) for s in job.context.fields if s.name in names for t in (s.salt, *s.salts)]
    others = {OTHER_NAME[name] for name, salt in salts if salt == "postcode_other_name"}
    keep = {"record_id", *names, *others, *(SALT_SOURCES[salt] for _, salt in salts if salt)}
    mapping = ColumnMapping(
        job.mapping.source, {k: v for k, v in job.mapping.columns.items() if k in keep}
    )
    records = normalise_columns(
        job.columns, job.count, mapping, today=job.today, where=job.where, record_ids=job.record_ids
    )
    fields = tuple(spec for spec in job.context.fields if spec.name in names)
    encoded = encode_fields(records, fields, secret=job.secret, context=job.context)
    wanted = {attribute.field for attribute in job.context.attributes}
    return encoded, records.report, {k: v for k, v in records.values.items() if k in wanted}


def _child(
    names: list[str],
) -> tuple[EncodedColumns, dict[str, FieldReport], dict[str, list[NormalValue]]]:
    assert _JOB is not None, "the job is set before the fork"
    return _part(_JOB, names)


def _split(columns: Columns, mapping: ColumnMapping) -> tuple[list[str], list[str]]:
    """Two groups of fields of about equal work (rows plus distinct raw values, judged from
    the first rows), the costliest first."""
    names = [n for n in mapping.columns if n != "record_id"]
    sample = {n: columns.get(mapping.columns[n].column, ())[:_SAMPLE_ROWS] for n in names}
    cost = {n: len(sample[n]) + len(set(sample[n])) for n in names}
    groups: tuple[list[str], list[str]] = ([], [])
    loads = [0, 0]
    for name in sorted(names, key=cost.__getitem__, reverse=True):
        lighter = loads.index(min(loads))
        groups[lighter].append(name)
        loads[lighter] += cost[name]
    return groups


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
) -> tuple[NormalisedRecords, EncodedColumns]:
    """Normalised records (values of attribute fields only when forked) and encoded fields."""
    fork = "fork" in multiprocessing.get_all_start_methods()
    if workers < 2 or count < MIN_ROWS_TO_FORK or not fork:
        records = normalise_columns(
            columns, count, mapping, today=today, strict=strict, where=where
        )
        return records, encode_fields(records, context.fields, secret=secret, context=context)
    record_ids = record_ids_of(columns, count, mapping, where)
    job = _Job(columns, count, mapping, secret, context, today, where, record_ids)
    ours, theirs = _split(columns, mapping)
    global _JOB
    _JOB = job
    try:
        with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("fork")) as pool:
            future = pool.submit(_child, theirs)
            encoded, report, values = _part(job, ours)
            child_encoded, child_report, child_values = future.result()
    finally:
        _JOB = None
    encoded.update(child_encoded)
    values.update(child_values)
    merged = {**report, **child_report}
    report = {name: merged[name] for name in mapping.columns if name in merged}
    enforce_strict(report, strict, where)
    return NormalisedRecords(record_ids, values, report), encoded
