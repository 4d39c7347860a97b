"""Canonical JSON (RFC 8785) and the hashes built on it.

A schema's or a policy's identity must not depend on how its YAML was written (key order,
quoting, comments), so hashes are taken over the RFC 8785 canonical JSON of the parsed YAML.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from typing import Any

import rfc8785


def jsonable(value: Any) -> Any:
    """YAML gives dates and datetimes; JSON has only strings for them (ISO 8601)."""
    if isinstance(value, dict):
        return {str(key): jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(item) for item in value]
    if isinstance(value, dt.date | dt.datetime):
        return value.isoformat()
    return value


def canonical_json(value: Any) -> bytes:
    """The RFC 8785 canonical form of a parsed YAML or JSON value."""
    return bytes(rfc8785.dumps(jsonable(value)))


def canonical_sha256(value: Any) -> str:
    """Hex SHA-256 of the canonical form."""
    return hashlib.sha256(canonical_json(value)).hexdigest()
