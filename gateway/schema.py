"""The linkage schemas shipped with the gateway as package data: the default, and the earlier
versions that policies may still pin by hash.

- ``schemas/default.yaml`` (version 3): names stored twice, salted with the date of birth
  and with the postcode (docs/attacks.md);
- ``schemas/default-v1.yaml`` (version 1): the default until version 3, names unhardened;
- ``schemas/hardened.yaml`` (version 2): names salted with the date of birth alone.

A policy pins a schema by its SHA-256; :func:`shipped_schema` finds the shipped one it pins,
so a node or ``placelink encode`` given no schema file serves a policy that pins an older
version as well as one that pins the default.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import yaml

from keys.errors import ConfigError
from policies.linkage_schema import LinkageSchema, load_schema, parse_schema

DEFAULT_SCHEMA_RESOURCE = "schemas/default.yaml"
DEFAULT_V1_SCHEMA_RESOURCE = "schemas/default-v1.yaml"
HARDENED_SCHEMA_RESOURCE = "schemas/hardened.yaml"
SHIPPED_SCHEMA_RESOURCES = (
    DEFAULT_SCHEMA_RESOURCE,
    DEFAULT_V1_SCHEMA_RESOURCE,
    HARDENED_SCHEMA_RESOURCE,
)


def _text(resource: str) -> str:
    return resources.files("gateway").joinpath(resource).read_text(encoding="utf-8")


def _load(resource: str) -> LinkageSchema:
    return parse_schema(yaml.safe_load(_text(resource)), where=f"gateway/{resource}")


def default_schema_text() -> str:
    return _text(DEFAULT_SCHEMA_RESOURCE)


def default_schema_path() -> Path:
    """The shipped schema's file, for services that are given schema files."""
    return shipped_schema_path(DEFAULT_SCHEMA_RESOURCE)


def shipped_schema_path(resource: str) -> Path:
    """The file of a shipped schema (one of :data:`SHIPPED_SCHEMA_RESOURCES`)."""
    return Path(str(resources.files("gateway").joinpath(resource)))


def default_schema() -> LinkageSchema:
    """The schema that serves the canonical columns; policies pin its SHA-256."""
    return _load(DEFAULT_SCHEMA_RESOURCE)


def default_v1_schema() -> LinkageSchema:
    """Version 1, the default until version 3: name fields unhardened."""
    return _load(DEFAULT_V1_SCHEMA_RESOURCE)


def hardened_schema() -> LinkageSchema:
    """Version 2: the name fields salted with the date of birth alone (docs/attacks.md)."""
    return _load(HARDENED_SCHEMA_RESOURCE)


def shipped_schemas() -> dict[str, LinkageSchema]:
    """Every shipped schema by its SHA-256."""
    schemas = (_load(resource) for resource in SHIPPED_SCHEMA_RESOURCES)
    return {schema.sha256: schema for schema in schemas}


def shipped_schema(sha256: str) -> LinkageSchema:
    """The shipped schema with this hash (the one a policy's ``linkage_schema`` pins)."""
    schema = shipped_schemas().get(sha256)
    if schema is None:
        raise ConfigError(
            "the policy pins a linkage schema that is not shipped with placelink",
            fix="give the schema file the policy pins (--schema, or the node's schema setting)",
        )
    return schema


def schema_for(path: Path | None, *, pinned: str | None = None) -> LinkageSchema:
    """The schema file at ``path`` when given; else the shipped schema with the hash a policy
    pins (``pinned``); else, with no policy, the default."""
    if path is not None:
        return load_schema(path)
    return default_schema() if pinned is None else shipped_schema(pinned)
