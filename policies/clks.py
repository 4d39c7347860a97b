"""The ``.clks`` layout: encoded records as they travel from a gateway to the linkage service.

Version 1, all integers big-endian::

    magic      6 bytes   b"PLCLKS"
    version    u16       1
    hlen       u32       length of the header
    header     hlen      RFC 8785 canonical JSON: format, version, schema_hash, policy_id,
                         policy_version, epoch, record_count, pseudonym_bytes,
                         fields [{name, encoding, bytes}], attributes [names]
    records    record_count * record_size bytes, record_size = pseudonym_bytes
                         + one presence byte per field + the sum of the fields' bytes;
                         each record: pseudonym | presence (0/1 per field) | field bytes in order
    alen       u32       length of the attribute table
    attributes alen      canonical JSON: one list per record, values in header order (str or null)

A pseudonym is random, made and kept by the node; it is never the agency's record ID. The layout
is shared by the file written by ``placelink encode`` and the body of an upload, so one parser
(this one) serves both sides; :mod:`policies.clks_stream` reads and writes the same bytes a
block of records at a time. The lives-in-``policies`` reason is the same as for the schema.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from keys.errors import InputError
from policies.canonical import canonical_json

MAGIC = b"PLCLKS"
FORMAT_VERSION = 1
PSEUDONYM_BYTES = 16
_PREFIX = struct.Struct(">6sHI")
_LEN = struct.Struct(">I")

U8Array = npt.NDArray[np.uint8]


@dataclass(frozen=True)
class FieldLayout:
    name: str
    encoding: str
    nbytes: int


@dataclass
class EncodedBatch:
    """Encoded records of one source, in memory, column by column."""

    schema_hash: str
    policy_id: str
    policy_version: str
    epoch: int
    fields: tuple[FieldLayout, ...]
    attribute_names: tuple[str, ...]
    pseudonyms: U8Array  # (n, 16)
    present: npt.NDArray[np.bool_]  # (n, number of fields)
    values: dict[str, U8Array] = field(default_factory=dict)  # name -> (n, nbytes)
    attributes: list[list[str | None]] = field(default_factory=list)  # per record

    def __len__(self) -> int:
        return int(self.pseudonyms.shape[0])

    def pseudonym_hex(self, row: int) -> str:
        return bytes(self.pseudonyms[row]).hex()

    def attribute_column(self, name: str) -> list[str | None]:
        index = self.attribute_names.index(name)
        return [row[index] for row in self.attributes]

    def header(self) -> dict[str, Any]:
        return {
            "format": "placelink-clks",
            "version": FORMAT_VERSION,
            "schema_hash": self.schema_hash,
            "policy_id": self.policy_id,
            "policy_version": self.policy_version,
            "epoch": self.epoch,
            "record_count": len(self),
            "pseudonym_bytes": PSEUDONYM_BYTES,
            "fields": [
                {"name": f.name, "encoding": f.encoding, "bytes": f.nbytes} for f in self.fields
            ],
            "attributes": list(self.attribute_names),
        }


def dump_clks(batch: EncodedBatch) -> bytes:
    """Serialise a batch into the version-1 layout."""
    header = canonical_json(batch.header())
    parts = [batch.pseudonyms.astype(np.uint8), batch.present.astype(np.uint8)]
    parts += [batch.values[f.name].astype(np.uint8) for f in batch.fields]
    records = np.ascontiguousarray(np.hstack(parts)) if len(batch) else np.zeros(0, np.uint8)
    table = _attribute_table(batch)
    return b"".join(
        [
            _PREFIX.pack(MAGIC, FORMAT_VERSION, len(header)),
            header,
            records.tobytes(),
            _LEN.pack(len(table)),
            table,
        ]
    )


def _attribute_table(batch: EncodedBatch) -> bytes:
    """The canonical JSON attribute table; without attributes every row is [] (written
    directly: the same bytes, without canonicalising a list per record)."""
    count = len(batch.attributes)
    if not batch.attribute_names and not any(batch.attributes):  # every row is empty
        return b"[" + b"[]," * (count - 1) + b"[]]" if count else b"[]"
    return canonical_json(batch.attributes)


def _bad(what: str) -> InputError:
    return InputError(
        f"not a valid .clks (version {FORMAT_VERSION}) payload: {what}",
        fix="re-encode the source with `placelink encode` from the same placelink version",
    )


def _read_header(data: bytes) -> tuple[dict[str, Any], int]:
    if len(data) < _PREFIX.size:
        raise _bad("it is shorter than the fixed prefix")
    magic, version, hlen = _PREFIX.unpack_from(data)
    if magic != MAGIC:
        raise _bad("the magic bytes are wrong")
    if version != FORMAT_VERSION:
        raise _bad(f"layout version {version} is not supported")
    end = _PREFIX.size + hlen
    try:
        header = json.loads(data[_PREFIX.size : end])
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise _bad("the header is not JSON") from None
    required = ("schema_hash", "policy_id", "policy_version", "epoch", "record_count", "fields")
    if len(data) < end or not isinstance(header, dict) or any(k not in header for k in required):
        raise _bad("the header is truncated or lacks a required key")
    if not isinstance(header.get("attributes", []), list):
        raise _bad("the header's attributes is not a list")
    return header, end


def _header_int(header: dict[str, Any], key: str) -> int:
    value = header[key]
    if isinstance(value, bool) or not isinstance(value, int):
        raise _bad(f"the header's {key} is not an integer")
    return value


def _layouts(header: dict[str, Any]) -> tuple[FieldLayout, ...]:
    try:
        return tuple(
            FieldLayout(str(f["name"]), str(f["encoding"]), int(f["bytes"]))
            for f in header["fields"]
        )
    except (KeyError, TypeError, ValueError, OverflowError):
        raise _bad("a field entry in the header is malformed") from None


def _checked_layouts(header: dict[str, Any]) -> tuple[tuple[FieldLayout, ...], int]:
    layouts = _layouts(header)
    count = _header_int(header, "record_count")
    if count < 0 or _header_int(header, "epoch") < 0 or any(f.nbytes <= 0 for f in layouts):
        raise _bad("negative record count, epoch or field size")
    if len({f.name for f in layouts}) != len(layouts):
        raise _bad("two fields share a name")
    if header.get("pseudonym_bytes", PSEUDONYM_BYTES) != PSEUDONYM_BYTES:
        raise _bad(f"pseudonyms are not {PSEUDONYM_BYTES} bytes")
    return layouts, count


def load_clks(data: bytes) -> EncodedBatch:
    """Parse a version-1 payload; any inconsistency is an :class:`InputError`."""
    header, offset = _read_header(data)
    layouts, count = _checked_layouts(header)
    width = PSEUDONYM_BYTES + len(layouts) + sum(f.nbytes for f in layouts)
    end = offset + count * width
    if len(data) < end + _LEN.size:
        raise _bad("the record section is truncated")
    matrix = np.frombuffer(data, dtype=np.uint8, count=count * width, offset=offset)
    matrix = matrix.reshape(count, width)
    (alen,) = _LEN.unpack_from(data, end)
    if len(data) != end + _LEN.size + alen:
        raise _bad("the attribute table is truncated or followed by extra bytes")
    attributes = _parse_attributes(data[end + _LEN.size :], count, header)
    present = matrix[:, PSEUDONYM_BYTES : PSEUDONYM_BYTES + len(layouts)]
    if np.any(present > 1):
        raise _bad("a presence flag is neither 0 nor 1")
    values, col = {}, PSEUDONYM_BYTES + len(layouts)
    for layout in layouts:
        values[layout.name] = matrix[:, col : col + layout.nbytes]
        col += layout.nbytes
    return EncodedBatch(
        schema_hash=str(header["schema_hash"]),
        policy_id=str(header["policy_id"]),
        policy_version=str(header["policy_version"]),
        epoch=_header_int(header, "epoch"),
        fields=layouts,
        attribute_names=tuple(str(a) for a in header.get("attributes", [])),
        pseudonyms=matrix[:, :PSEUDONYM_BYTES],
        present=present.astype(bool),
        values=values,
        attributes=attributes,
    )


def _parse_attributes(raw: bytes, count: int, header: dict[str, Any]) -> list[list[str | None]]:
    try:
        table = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise _bad("the attribute table is not JSON") from None
    width = len(header.get("attributes", []))
    if not isinstance(table, list) or len(table) != count:
        raise _bad("the attribute table does not have one row per record")
    for row in table:
        if not isinstance(row, list) or len(row) != width:
            raise _bad("an attribute row has the wrong number of values")
        if any(v is not None and not isinstance(v, str) for v in row):
            raise _bad("an attribute value is neither a string nor null")
    return table
