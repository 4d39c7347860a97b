"""The default linkage schema, shipped with the gateway as package data."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import yaml

from policies.linkage_schema import LinkageSchema, parse_schema

DEFAULT_SCHEMA_RESOURCE = "schemas/default.yaml"
HARDENED_SCHEMA_RESOURCE = "schemas/hardened.yaml"


def default_schema_text() -> str:
    return resources.files("gateway").joinpath(DEFAULT_SCHEMA_RESOURCE).read_text(encoding="utf-8")


def default_schema_path() -> Path:
    """The shipped schema's file, for services that are given schema files."""
    return Path(str(resources.files("gateway").joinpath(DEFAULT_SCHEMA_RESOURCE)))


def default_schema() -> LinkageSchema:
    """The schema that serves the canonical columns; policies pin its SHA-256."""
    return parse_schema(yaml.safe_load(default_schema_text()), where="default linkage schema")


def hardened_schema() -> LinkageSchema:
    """The default schema with name fields salted with the date of birth (docs/attacks.md)."""
    text = resources.files("gateway").joinpath(HARDENED_SCHEMA_RESOURCE).read_text(encoding="utf-8")
    return parse_schema(yaml.safe_load(text), where="hardened linkage schema")
