"""The linkage engine's input: encoded records of many sources, column by column."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import numpy.typing as npt

from keys.errors import InputError
from policies.clks import EncodedBatch, FieldLayout
from policies.linkage_schema import LinkageSchema, copy_column


@dataclass(frozen=True)
class FieldColumn:
    """One encoded field over every record: packed bytes and presence."""

    encoding: str
    values: npt.NDArray[np.uint8]  # (n, nbytes)
    present: npt.NDArray[np.bool_]  # (n,)


@dataclass(frozen=True)
class EncodedCorpus:
    """Records of several sources under one schema, policy and epoch."""

    source_names: tuple[str, ...]
    source_index: npt.NDArray[np.int32]  # (n,) index into source_names
    pseudonyms: tuple[str, ...]
    fields: dict[str, FieldColumn]
    # Fields stored as copies, one per salt (schema ``salt: [...]``): field -> per copy, the
    # field whose equal filters say that two records' salts agree (LinkageSchema.salt_fields).
    salt_fields: dict[str, tuple[str, ...]] = field(default_factory=dict)
    # Per copy, the copy whose salt holds this field ('' for none): LinkageSchema.copy_partners.
    copy_partners: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.pseudonyms)

    def copy_name(self, name: str, copy: int) -> str:
        """The name of one copy of a field with copies, as blocking sees it."""
        return copy_column(name, self.salt_fields[name][copy])

    @cached_property
    def copy_columns(self) -> dict[str, FieldColumn]:
        """Every field, a field with copies split into one column per copy (``copy_name``),
        present where the copy is (not all-zero)."""
        out = {n: c for n, c in self.fields.items() if n not in self.salt_fields}
        for name, salts in self.salt_fields.items():
            column = self.fields[name]
            width = column.values.shape[1] // len(salts)
            for copy in range(len(salts)):
                values = np.ascontiguousarray(column.values[:, copy * width : (copy + 1) * width])
                present = column.present & values.any(axis=1)
                out[self.copy_name(name, copy)] = FieldColumn(column.encoding, values, present)
        return out

    def member_key(self, row: int) -> str:
        """A record's identity inside the linkage service: source and pseudonym."""
        return f"{self.source_names[self.source_index[row]]}:{self.pseudonyms[row]}"


def _check_compatible(batches: list[tuple[str, EncodedBatch]]) -> tuple[FieldLayout, ...]:
    first = batches[0][1]
    for source, batch in batches[1:]:
        same = (batch.schema_hash, batch.policy_id, batch.epoch, batch.fields) == (
            first.schema_hash,
            first.policy_id,
            first.epoch,
            first.fields,
        )
        if not same:
            raise InputError(
                f"the encodings of {source!r} were made under another schema, policy, epoch or "
                "field layout than the others",
                fix="re-encode every source with the same schema, policy id and epoch",
            )
    return first.fields


def _copies(
    schema: LinkageSchema | None, first: EncodedBatch, layouts: tuple[FieldLayout, ...]
) -> tuple[dict[str, tuple[str, ...]], dict[str, tuple[str, ...]]]:
    """The schema's fields with copies: salt fields and partner copies, of this corpus's fields."""
    if schema is None:
        return {}, {}
    if schema.sha256 != first.schema_hash:
        raise InputError(
            "the encodings were made under another linkage schema than the one given",
            fix="give the schema whose hash the encodings carry",
        )
    names = {layout.name for layout in layouts}
    salts = {n: fields for n, fields in schema.salt_fields().items() if n in names}
    partners = {n: copies for n, copies in schema.copy_partners().items() if n in salts}
    return salts, partners


def build_corpus(
    batches: list[tuple[str, EncodedBatch]], schema: LinkageSchema | None = None
) -> EncodedCorpus:
    """Concatenate batches (source name, batch) into one corpus; all must be compatible. With
    the ``schema`` they were encoded under, fields with copies are compared copy by copy."""
    if not batches:
        raise InputError("there is nothing to link", fix="give at least one encoded source")
    layouts = _check_compatible(batches)
    names = tuple(dict.fromkeys(source for source, _ in batches))
    index = np.concatenate([np.full(len(b), names.index(s), dtype=np.int32) for s, b in batches])
    pseudonyms = tuple(b.pseudonym_hex(row) for _, b in batches for row in range(len(b)))
    fields = {
        layout.name: FieldColumn(
            encoding=layout.encoding,
            values=np.ascontiguousarray(np.vstack([b.values[layout.name] for _, b in batches])),
            present=np.concatenate([b.present[:, i] for _, b in batches]),
        )
        for i, layout in enumerate(layouts)
    }
    salt_fields, partners = _copies(schema, batches[0][1], layouts)
    return EncodedCorpus(names, index, pseudonyms, fields, salt_fields, partners)
