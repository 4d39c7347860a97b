"""The linkage engine's input: encoded records of many sources, column by column."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from keys.errors import InputError
from policies.clks import EncodedBatch, FieldLayout


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

    def __len__(self) -> int:
        return len(self.pseudonyms)

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


def build_corpus(batches: list[tuple[str, EncodedBatch]]) -> EncodedCorpus:
    """Concatenate batches (source name, batch) into one corpus; all must be compatible."""
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
    return EncodedCorpus(names, index, pseudonyms, fields)
