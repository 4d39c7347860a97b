"""Encoding a batch of normalised records under a schema, a policy and the linkage secret.

Only fields the policy names for encoding are encoded, and only attributes the policy names are
attached, each in its declared generalised form. Everything else stays at home.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from gateway.bloom import U8, BloomEncoder, TokenEncoder, or_rows
from gateway.codebook import distinct
from gateway.generalise import generaliser
from gateway.hardening import filter_spec, salt_parts, salted, salts_for, transform
from gateway.pseudonyms import PseudonymMap
from gateway.records import NormalisedRecords
from gateway.salted_positions import coded_copy_filters, copy_keys
from gateway.tokenise import token_ids
from keys import KeyPurpose, LinkageSecret, derive_key
from policies.clks import PSEUDONYM_BYTES, EncodedBatch, FieldLayout
from policies.decisions import ReleasedAttribute
from policies.linkage_schema import FieldSpec, LinkageSchema


@dataclass(frozen=True)
class EncodingContext:
    """Everything that binds an encoding: schema, policy, epoch, and what may leave."""

    schema: LinkageSchema
    policy_id: str
    policy_version: str
    epoch: int
    fields: tuple[FieldSpec, ...]
    attributes: tuple[ReleasedAttribute, ...] = ()


def _field_key(spec: FieldSpec, secret: LinkageSecret, ctx: EncodingContext) -> bytes:
    purpose = KeyPurpose.BLOOM if spec.encoding == "bloom" else KeyPurpose.TOKEN
    return derive_key(
        secret, purpose=purpose, policy_id=ctx.policy_id, epoch=ctx.epoch, field=spec.name
    )


def _encoder(
    spec: FieldSpec, secret: LinkageSecret, ctx: EncodingContext
) -> BloomEncoder | TokenEncoder:
    key = _field_key(spec, secret, ctx)
    return (
        BloomEncoder(filter_spec(spec), key)
        if spec.encoding == "bloom"
        else TokenEncoder(spec, key)
    )


def _attributes(records: NormalisedRecords, ctx: EncodingContext) -> list[list[str | None]]:
    columns = []
    for attribute in ctx.attributes:
        source = records.values.get(attribute.field, [None] * len(records))
        apply = generaliser(attribute.generalisation)
        columns.append([None if v is None else apply(v) for v in source])
    if not columns:  # one empty row, shared (no reader changes a row): 1M lists took 0.09 s
        return [[]] * len(records.record_ids)
    return [list(row) for row in zip(*columns, strict=True)]


@dataclass
class EncodedColumns:
    """Encoded fields of a batch: bytes (n, field bytes) and presence (n,) per field name."""

    values: dict[str, U8] = field(default_factory=dict)
    present: dict[str, npt.NDArray[np.bool_]] = field(default_factory=dict)

    def update(self, other: EncodedColumns) -> None:
        self.values.update(other.values)
        self.present.update(other.present)


def encode_fields(
    records: NormalisedRecords,
    fields: tuple[FieldSpec, ...],
    *,
    secret: LinkageSecret,
    context: EncodingContext,
    into: EncodedColumns | None = None,
) -> EncodedColumns:
    """Encode the given fields of normalised records (a missing field encodes as absent).
    With ``into`` (zeroed arrays, e.g. shared memory), fields with salted copies are written
    straight into its arrays, which the result then holds."""
    out = EncodedColumns()
    for spec in fields:
        if spec.salts:
            target = into.values.get(spec.name) if into is not None else None
            filters, present = _encode_copies(records, spec, secret, context, into=target)
        else:
            filters, present = _encode_field(records, spec, secret, context)
        out.values[spec.name], out.present[spec.name] = filters, present
    return out


def _encode_field(
    records: NormalisedRecords, spec: FieldSpec, secret: LinkageSecret, ctx: EncodingContext
) -> tuple[U8, npt.NDArray[np.bool_]]:
    count, coded = len(records), records.coded_column(spec.name)
    present = coded.present()
    encoder = _encoder(spec, secret, ctx)
    salts = salts_for(spec, records.values, count)
    if isinstance(encoder, BloomEncoder) and salts is not None:
        filters = salted_filters(encoder, records.values.get(spec.name, [None] * count), salts)
    else:
        filters = encoder.encode_book(coded.values, coded.rows)
    if isinstance(encoder, BloomEncoder):  # hardening: gateway/hardening.py
        key = _field_key(spec, secret, ctx)
        filters = transform(filters, present, spec, key, records.record_ids)
    return filters, present


def salted_filters(
    encoder: BloomEncoder, values: Sequence[str | dt.date | None], salts: Sequence[str | None]
) -> U8:
    """``encoder.encode_many(values, salts)``'s bytes in one vectorised pass (all-zero rows
    where the value or the salt is None): each distinct (value, salt) once, each distinct
    salted token once, one batch of keyed hashes for them all."""
    pairs = [None if v is None or s is None else (v, s) for v, s in zip(values, salts, strict=True)]
    unique, index = distinct(pairs)
    present = [p for p in unique if p is not None]
    filters = np.zeros((len(present), encoder.spec.bits // 8), dtype=np.uint8)
    if present:
        vocabulary, ids = token_ids(encoder.spec, [value for value, _ in present])
        ids = ids.astype(np.int64)  # numbered again with the salts below: wider than 16 bits
        salt_names, salt_of = np.unique([salt for _, salt in present], return_inverse=True)
        real = ids < len(vocabulary)
        codes = ids * len(salt_names) + salt_of.reshape(-1, 1)
        used, numbered = np.unique(codes[real], return_inverse=True)
        width = len(salt_names)
        tokens = [salted(vocabulary[c // width], str(salt_names[c % width])) for c in used.tolist()]
        salted_ids = np.full(ids.shape, len(tokens), dtype=np.int64)  # padding: the zero row
        salted_ids[real] = numbered.reshape(-1)
        filters = or_rows(encoder.token_filters(tokens), salted_ids)
    if None in unique:
        filters = np.insert(filters, unique.index(None), 0, axis=0)
    return np.ascontiguousarray(filters[index])


def _encode_copies(
    records: NormalisedRecords,
    spec: FieldSpec,
    secret: LinkageSecret,
    ctx: EncodingContext,
    *,
    into: U8 | None = None,
) -> tuple[U8, npt.NDArray[np.bool_]]:
    """A field with a list of salts: one copy per salt, side by side (positions of salted
    tokens: :mod:`gateway.salted_positions`), in ``into`` when given (zeroed); a copy whose
    salt is missing is all-zero. Present: the value and at least one salt are."""
    key, value = _field_key(spec, secret, ctx), records.coded_column(spec.name)
    hashed, width = filter_spec(spec), spec.copy_bytes
    out = np.zeros((len(records), spec.nbytes), dtype=np.uint8) if into is None else into
    present = np.zeros(len(records), dtype=bool)
    for copy, salt in enumerate(spec.salts):
        parts, keys, stored = (
            salt_parts(salt, spec.name, records.coded_column),
            copy_keys(key, salt),
            spec.copy_spec(salt),
        )
        if stored.blip or stored.xor_fold or stored.balance:  # a stored form of its own
            filters, held = coded_copy_filters(keys, hashed, value, parts)
            out[:, copy * width : (copy + 1) * width] = transform(
                filters, held, stored, key, records.record_ids
            )
        else:  # the hashed filter is what is stored: written in place
            _, held = coded_copy_filters(keys, hashed, value, parts, out=out, column=copy * width)
        present |= held
    return out, present


def assemble_batch(
    records: NormalisedRecords,
    encoded: EncodedColumns,
    *,
    context: EncodingContext,
    pseudonyms: PseudonymMap,
) -> EncodedBatch:
    """The batch: pseudonyms from (and added to) the node's map, encoded fields, attributes."""
    count = len(records)
    raw = pseudonyms.pseudonyms_for(records.record_ids)
    pseudo = np.frombuffer(raw, dtype=np.uint8).reshape(count, PSEUDONYM_BYTES).copy()
    present = np.zeros((count, len(context.fields)), dtype=bool)
    for index, spec in enumerate(context.fields):
        present[:, index] = encoded.present[spec.name]
    return EncodedBatch(
        schema_hash=context.schema.sha256,
        policy_id=context.policy_id,
        policy_version=context.policy_version,
        epoch=context.epoch,
        fields=tuple(FieldLayout(s.name, s.encoding, s.nbytes) for s in context.fields),
        attribute_names=tuple(a.name for a in context.attributes),
        pseudonyms=pseudo,
        present=present,
        values={spec.name: encoded.values[spec.name] for spec in context.fields},
        attributes=_attributes(records, context),
    )


def encode_records(
    records: NormalisedRecords,
    *,
    secret: LinkageSecret,
    context: EncodingContext,
    pseudonyms: PseudonymMap,
) -> EncodedBatch:
    """Encode a batch; pseudonyms come from (and are added to) the node's map."""
    encoded = encode_fields(records, context.fields, secret=secret, context=context)
    return assemble_batch(records, encoded, context=context, pseudonyms=pseudonyms)
