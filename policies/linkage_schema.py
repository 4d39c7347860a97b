"""The linkage schema: which fields are encoded, and how.

All parties of a policy use one schema; its SHA-256 over the canonical JSON of the parsed YAML
is what the policy pins in ``linkage_schema`` and what every ``.clks`` header carries. The model
lives in ``policies`` because both the gateway (which encodes) and the linkage service (which
compares) read it, and neither may import the other.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

import yaml

from keys.errors import ConfigError
from policies.canonical import canonical_sha256

Encoding = Literal["bloom", "token"]
NORMALISERS = ("given_name", "family_name", "date", "sex", "postcode", "address", "nhs_number")
# Stable attributes a field may be salted with; postcode_other_name: the postcode and, for a
# name, the person's other name (given for family, family for given), in full.
SALTS = ("birth_year", "birth_date", "postcode", "postcode_other_name")
# Salts a field may list (``salt: [birth_date, postcode_other_name]``, one copy of the filter
# per salt): those whose agreement the linkage side can read from a deterministic filter of the
# salt's own field (normaliser -> salt), so that it compares a copy only where the salts agree.
COPY_SALTS = {"birth_date": "date", "postcode": "postcode", "postcode_other_name": "postcode"}
# postcode_other_name salts a name with the postcode and the person's other name, in full.
OTHER_NAME = {"given_name": "family_name", "family_name": "given_name"}
OTHER_NAME_SALT = "postcode_other_name"


def copy_column(name: str, salt_field: str) -> str:
    """The name of one copy of a field with copies, as the linkage side compares and bands it."""
    return f"{name}@{salt_field}"


MAX_BLIP = 0.25


@dataclass(frozen=True)
class FieldSpec:
    """One encoded field."""

    name: str
    normalise: str
    encoding: Encoding
    ngram: int = 2
    bits: int = 0
    hashes: int = 0
    salt: str | None = None  # hardening: tokens salted with this stable attribute
    salts: tuple[str, ...] = ()  # hardening: one copy per salt, absent where its salt is missing
    blip: float = 0.0  # hardening: each bit flipped with this probability (BLIP)
    xor_fold: bool = False  # hardening: the filter's halves XOR-ed into one (half the bits)
    balance: bool = False  # hardening: filter and complement, keyed-permuted (twice the bits)

    @property
    def blip_epsilon(self) -> float | None:
        """Differential-privacy epsilon of BLIP per bit, ln((1 - p) / p); None without BLIP."""
        return math.log((1 - self.blip) / self.blip) if self.blip else None

    @property
    def stored_bits(self) -> int:
        """Bits of the filter as stored and compared: ``bits``, halved by ``xor_fold``, then
        doubled by ``balance`` (``bits`` is the width the tokens are hashed into)."""
        folded = self.bits // 2 if self.xor_fold else self.bits
        return 2 * folded if self.balance else folded

    @property
    def copies(self) -> int:
        """Filters stored for the field: one per listed salt (``salts``), else one."""
        return max(1, len(self.salts))

    @property
    def copy_bytes(self) -> int:
        """Bytes of one stored copy: the stored filter, or a 16-byte token."""
        return self.stored_bits // 8 if self.encoding == "bloom" else 16

    @property
    def nbytes(self) -> int:
        """Bytes this field takes in a record: its copies side by side, in ``salts`` order."""
        return self.copies * self.copy_bytes

    def copy_spec(self, salt: str) -> FieldSpec:
        """One copy of a field with ``salts``: the same encoding, salted with ``salt`` alone."""
        return replace(self, salt=salt, salts=())


@dataclass(frozen=True)
class LinkageSchema:
    """A parsed, validated linkage schema and its identifying hash."""

    name: str
    version: int
    fields: tuple[FieldSpec, ...]
    sha256: str

    def field(self, name: str) -> FieldSpec:
        for spec in self.fields:
            if spec.name == name:
                return spec
        raise ConfigError(
            f"the linkage schema {self.name!r} has no field {name!r}",
            fix="use a field the schema declares",
        )

    def salt_fields(self) -> dict[str, tuple[str, ...]]:
        """Each field with a list of salts -> per copy, the field whose filters carry its salt
        (equal filters there: equal salts, so that copy of the two records is comparable)."""
        return {
            spec.name: tuple(_salt_field(self.fields, salt) or "" for salt in spec.salts)
            for spec in self.fields
            if spec.salts
        }

    def copy_partners(self) -> dict[str, tuple[str, ...]]:
        """Each field with a list of salts -> per copy, the copy whose salt holds this field's
        value ('' for none): a name salted with the postcode and the other name is read with the
        other name's copy salted so, whose salt holds this name (linkage.compare: where either
        copy's filters are close, that copy's salt agrees; where neither is, one name differs and
        nothing says which)."""
        postcode = _salt_field(self.fields, OTHER_NAME_SALT) or ""
        return {
            spec.name: tuple(
                copy_column(OTHER_NAME[spec.name], postcode) if salt == OTHER_NAME_SALT else ""
                for salt in spec.salts
            )
            for spec in self.fields
            if spec.salts
        }


def _salt_field(fields: tuple[FieldSpec, ...], salt: str) -> str | None:
    """The deterministic Bloom field normalised as the salt is (None when the schema has none)."""
    for spec in fields:
        usable = spec.encoding == "bloom" and not spec.blip and not spec.salt and not spec.salts
        if usable and spec.normalise == COPY_SALTS[salt]:
            return spec.name
    return None


def _parse_field(name: str, raw: Any, where: str) -> FieldSpec:
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: field {name!r} must be a mapping", fix="see docs/formats.md")
    encoding = raw.get("encoding")
    normalise = raw.get("normalise", name)
    if encoding not in ("bloom", "token"):
        raise ConfigError(
            f"{where}: field {name!r} has encoding {encoding!r}", fix="use 'bloom' or 'token'"
        )
    if normalise not in NORMALISERS:
        raise ConfigError(
            f"{where}: field {name!r} has an unknown normaliser {normalise!r}",
            fix=f"use one of {', '.join(NORMALISERS)}",
        )
    try:
        spec = FieldSpec(
            name=name,
            normalise=normalise,
            encoding=encoding,
            ngram=int(raw.get("ngram", 2)),
            bits=int(raw.get("bits", 0)),
            hashes=int(raw.get("hashes", 0)),
            salt=_single_salt(raw.get("salt")),
            salts=_salt_list(raw.get("salt"), name, where),
            blip=float(raw.get("blip", 0.0)),
            xor_fold=_flag(raw, "xor_fold", name, where),
            balance=_flag(raw, "balance", name, where),
        )
    except (TypeError, ValueError):
        raise ConfigError(
            f"{where}: field {name!r} has a non-numeric ngram, bits, hashes or blip",
            fix="write whole numbers, e.g. ngram: 2, bits: 256, hashes: 20",
        ) from None
    if not 1 <= spec.ngram <= 4:
        raise ConfigError(f"{where}: field {name!r} has ngram outside 1..4", fix="use ngram: 2")
    _check_hardening(spec, where)
    if encoding == "bloom" and (spec.bits <= 0 or spec.bits % 64 or spec.hashes <= 0):
        raise ConfigError(
            f"{where}: Bloom field {name!r} needs bits (a multiple of 64) and hashes > 0",
            fix="set e.g. bits: 256 and hashes: 20",
        )
    return spec


def _single_salt(value: Any) -> str | None:
    return None if value is None or isinstance(value, list) else str(value)


def _salt_list(value: Any, name: str, where: str) -> tuple[str, ...]:
    if not isinstance(value, list):
        return ()
    salts = tuple(str(item) for item in value)
    if len(salts) < 1 or len(set(salts)) != len(salts):
        raise ConfigError(
            f"{where}: field {name!r} lists no salt or one salt twice",
            fix="list distinct salts, e.g. salt: [birth_date, postcode_other_name]",
        )
    return salts


def _flag(raw: dict[str, Any], option: str, name: str, where: str) -> bool:
    value = raw.get(option, False)
    if not isinstance(value, bool):
        raise ConfigError(
            f"{where}: field {name!r} has a non-boolean {option}",
            fix=f"write {option}: true or {option}: false",
        )
    return value


def _check_hardening(spec: FieldSpec, where: str) -> None:
    hardened = (
        spec.salt is not None
        or bool(spec.salts)
        or spec.blip != 0.0
        or spec.xor_fold
        or spec.balance
    )
    if hardened and spec.encoding != "bloom":
        raise ConfigError(
            f"{where}: field {spec.name!r} is a token field; salt, blip, xor_fold and balance "
            "harden Bloom fields",
            fix="remove the hardening options from the field, or make it a Bloom field",
        )
    if spec.xor_fold and spec.bits % 128:
        raise ConfigError(
            f"{where}: field {spec.name!r} has xor_fold with bits not a multiple of 128",
            fix="set bits to a multiple of 128 (the folded filter keeps a multiple of 64)",
        )
    if spec.salt is not None and spec.salt not in SALTS:
        raise ConfigError(
            f"{where}: field {spec.name!r} has an unknown salt {spec.salt!r}",
            fix=f"use one of {', '.join(SALTS)}",
        )
    if any(salt not in COPY_SALTS for salt in spec.salts):
        raise ConfigError(
            f"{where}: field {spec.name!r} lists a salt the linkage side cannot check",
            fix=f"list only {', '.join(COPY_SALTS)} (or give one salt, not a list)",
        )
    if spec.salts and spec.blip:
        raise ConfigError(
            f"{where}: field {spec.name!r} combines a list of salts with blip",
            fix="use either a list of salts or blip on the field",
        )
    if not (math.isfinite(spec.blip) and 0.0 <= spec.blip <= MAX_BLIP):
        raise ConfigError(
            f"{where}: field {spec.name!r} has blip outside 0..{MAX_BLIP}",
            fix="write a flip probability such as blip: 0.02 (0 turns it off)",
        )


def parse_schema(document: Any, *, where: str = "linkage schema") -> LinkageSchema:
    """Validate a parsed YAML document into a :class:`LinkageSchema`."""
    if not isinstance(document, dict) or not isinstance(document.get("fields"), dict):
        raise ConfigError(f"{where}: no 'fields' mapping", fix="see docs/formats.md")
    fields = tuple(_parse_field(str(n), raw, where) for n, raw in document["fields"].items())
    if not fields:
        raise ConfigError(f"{where}: 'fields' is empty", fix="declare at least one field")
    for spec in fields:
        _check_other_name(spec, fields, where)
        for salt in spec.salts:
            if _salt_field(fields, salt) is None:
                raise ConfigError(
                    f"{where}: field {spec.name!r} is salted with {salt!r}, but no unsalted "
                    f"Bloom field without blip is normalised as {COPY_SALTS[salt]!r}",
                    fix=f"declare such a field (e.g. {COPY_SALTS[salt]}), or drop the salt",
                )
    version = document.get("schema_version", 1)
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise ConfigError(f"{where}: schema_version must be a whole number", fix="write 1")
    return LinkageSchema(
        name=str(document.get("name", "unnamed")),
        version=version,
        fields=fields,
        sha256=_schema_hash(document, where),
    )


def _check_other_name(spec: FieldSpec, fields: tuple[FieldSpec, ...], where: str) -> None:
    """``postcode_other_name`` needs a name whose other name is salted so too."""
    if OTHER_NAME_SALT not in (spec.salt, *spec.salts):
        return
    other = next((f for f in fields if f.name == OTHER_NAME.get(spec.name)), None)
    if other is None or OTHER_NAME_SALT not in other.salts or not spec.salts:
        raise ConfigError(
            f"{where}: field {spec.name!r} is salted with {OTHER_NAME_SALT!r}, which needs "
            "given_name and family_name both listing it among their salts",
            fix="list postcode_other_name in the salts of both given_name and family_name",
        )


def _schema_hash(document: dict[str, Any], where: str) -> str:
    """The canonical hash; a value JSON cannot carry (binary, a huge integer) is refused."""
    try:
        return canonical_sha256(document)
    except (ValueError, TypeError) as exc:  # rfc8785's errors are ValueErrors
        raise ConfigError(
            f"{where}: holds a value JSON cannot carry ({type(exc).__name__})",
            fix="use only text, numbers, true/false and lists or mappings of them",
        ) from None


def load_schema(path: Path) -> LinkageSchema:
    """Read and validate a linkage schema YAML file."""
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ConfigError(
            f"cannot read the linkage schema {path}: {exc}", fix="check the path and YAML syntax"
        ) from None
    return parse_schema(document, where=str(path))
