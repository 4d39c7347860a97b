"""From an agency's CSV to an encoded batch: read, map, validate, normalise, encode.

Shared by the offline ``placelink encode`` command and the gateway node's publication.
"""

from __future__ import annotations

import datetime as dt
import gc
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from gateway.copy_kernels import COMPILED_FROM_RECORDS, load_in_background
from gateway.encode import EncodingContext, assemble_batch
from gateway.mapping import ColumnMapping, canonical_mapping, load_mapping
from gateway.parallel import forks, normalise_and_encode
from gateway.pseudonyms import PseudonymMap
from gateway.records import FieldReport, check_header, normalise_columns, read_csv_columns
from keys import LinkageSecret
from keys.errors import InputError
from policies.clks import EncodedBatch
from policies.clks_stream import write_clks
from policies.decisions import (
    check_in_force,
    check_schema,
    encoded_fields,
    released_attributes,
)
from policies.linkage_schema import LinkageSchema
from policies.model import Policy


@dataclass
class EncodeResult:
    batch: EncodedBatch
    report: dict[str, FieldReport]
    source: str


def context_for_policy(
    policy: Policy, schema: LinkageSchema, *, epoch: int, today: dt.date
) -> EncodingContext:
    """What the policy lets leave: refused if the policy is not in force or pins another schema."""
    check_in_force(policy, today=today)
    check_schema(policy, schema)
    return EncodingContext(
        schema=schema,
        policy_id=policy.policy_id,
        policy_version=policy.version,
        epoch=epoch,
        fields=encoded_fields(policy, schema),
        attributes=released_attributes(policy),
    )


def context_without_policy(schema: LinkageSchema, *, policy_id: str, epoch: int) -> EncodingContext:
    """Offline encoding with no policy file: the schema's fields, and no attributes at all."""
    return EncodingContext(schema, policy_id, "unversioned", epoch, schema.fields, ())


@contextmanager
def cyclic_gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while building large tables of acyclic objects
    (strings, lists of strings); it would otherwise scan them again and again."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _read_mapped(
    input_path: Path, mapping_path: Path | None
) -> tuple[ColumnMapping, dict[str, Sequence[str]], int]:
    """The CSV's columns and its mapping (identity for a canonical CSV), checked against each
    other; and the record count."""
    header, columns = read_csv_columns(input_path)
    mapping = (
        load_mapping(mapping_path) if mapping_path else canonical_mapping(input_path.stem, header)
    )
    if "record_id" not in mapping.columns:
        raise_missing_record_id(input_path)
    check_header(header, mapping, str(input_path))
    return mapping, columns, len(next(iter(columns.values()), []))


def encode_csv(
    input_path: Path,
    *,
    secret: LinkageSecret,
    context: EncodingContext,
    pseudonyms: PseudonymMap,
    mapping_path: Path | None = None,
    strict: bool = False,
    today: dt.date | None = None,
    workers: int = 1,
) -> EncodeResult:
    """Read one CSV through its mapping (identity for canonical CSVs) and encode it; with
    ``workers=2`` two processes share the fields (same bytes, see :mod:`gateway.parallel`)."""
    if any(spec.salts for spec in context.fields) and _holds_many_records(input_path, workers):
        load_in_background()  # the compiled loops of salted copies, while the file is read
    with cyclic_gc_paused():
        mapping, columns, count = _read_mapped(input_path, mapping_path)
        records, encoded = normalise_and_encode(
            columns,
            count,
            mapping,
            secret=secret,
            context=context,
            today=today or dt.date.today(),
            strict=strict,
            where=str(input_path),
            workers=workers,
            pseudonyms=pseudonyms,
        )
        batch = assemble_batch(records, encoded, context=context, pseudonyms=pseudonyms)
        return EncodeResult(
            batch=batch, report=records.report, source=mapping.source or input_path.stem
        )


def _holds_many_records(path: Path, workers: int) -> bool:
    """Whether a CSV file is large enough (at some 90 bytes a record) for the compiled loops
    of salted copies to pay for their loading (:data:`COMPILED_FROM_RECORDS`), in this
    process: where two share the fields, the child loads them (:mod:`gateway.parallel`)."""
    if not path.is_file():
        return False
    records = path.stat().st_size // 90
    return records >= COMPILED_FROM_RECORDS and not forks(workers, records)


def check_csv(
    input_path: Path, *, mapping_path: Path | None = None, today: dt.date | None = None
) -> tuple[int, dict[str, FieldReport]]:
    """Read and normalise one CSV through its mapping, encoding nothing: the record count and
    each field's report (valid, foreign-but-usable, invalid, missing, first invalid rows)."""
    with cyclic_gc_paused():
        mapping, columns, count = _read_mapped(input_path, mapping_path)
        records = normalise_columns(
            columns, count, mapping, today=today or dt.date.today(), where=str(input_path)
        )
    return count, records.report


def raise_missing_record_id(path: Path) -> None:
    raise InputError(
        f"{path}: there is no record_id column",
        fix="add a record_id column, or pass --mapping naming your ID column",
    )


def encode_file(
    input_path: Path,
    output_path: Path,
    *,
    secret: LinkageSecret,
    context: EncodingContext,
    mapping_path: Path | None = None,
    strict: bool = False,
    today: dt.date | None = None,
    workers: int = 1,
) -> EncodeResult:
    """The offline ``encode``: writes OUTPUT (.clks) and OUTPUT.ids (kept at the agency)."""
    ids_path = output_path.with_name(output_path.name + ".ids")
    pseudonyms = PseudonymMap.load(ids_path)
    pseudonyms.stage_at(ids_path)  # a first map is written while the fields are encoded
    try:
        result = encode_csv(
            input_path,
            secret=secret,
            context=context,
            pseudonyms=pseudonyms,
            mapping_path=mapping_path,
            strict=strict,
            today=today,
            workers=workers,
        )
        tmp = output_path.with_name(output_path.name + ".tmp")
        with tmp.open("wb") as handle:  # block by block: no second copy of the batch in memory
            write_clks(result.batch, handle, threads=2 if workers >= 2 else 1)
    except BaseException:
        pseudonyms.discard_staged()  # the map file and its folder stay as they were
        raise
    pseudonyms.save(ids_path)
    tmp.replace(output_path)
    return result
