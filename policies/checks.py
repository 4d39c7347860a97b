"""Typed checks that turn each problem of a policy document into a finding, never an exception."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from policies.findings import FindingList
from policies.located import YamlPath
from policies.vocabulary import FINGERPRINT_PATTERN, ID_PATTERN

FORMAT_FIX = "see docs/dpo.md (the policy format) and policies/examples/task-force.yaml"


class Checker:
    """Typed checks over one document; each failed check is a finding, never an exception."""

    def __init__(self, findings: FindingList) -> None:
        self.findings = findings
        self.missing: set[YamlPath] = set()

    def bad(self, path: YamlPath, message: str, fix: str) -> None:
        if path not in self.missing:  # a missing key is one finding, not two
            self.findings.add("invalid-value", path, message, fix)

    def keys(
        self, path: YamlPath, value: Any, required: tuple[str, ...], optional: tuple[str, ...]
    ) -> bool:
        """A mapping with all of ``required`` and nothing outside ``required + optional``."""
        if not isinstance(value, dict):
            self.bad(path, "must be a mapping", f"write it as `key: value` lines; {FORMAT_FIX}")
            return False
        for key in required:
            if key not in value:
                self.findings.add("missing-key", path, f"missing key {key!r}", f"add {key!r}")
                self.missing.add((*path, key))
        for key in value:
            if key not in required + optional:
                allowed = ", ".join(required + optional)
                self.findings.add(
                    "unknown-key", (*path, str(key)), f"unknown key {key!r}", f"use {allowed}"
                )
        return True

    def text(self, path: YamlPath, value: Any, *, optional: bool = False) -> None:
        if value is None and optional:
            return
        if not isinstance(value, str) or not value.strip():
            self.bad(path, "must be non-empty text", "write the text (quote it if it is a number)")

    def ident(self, path: YamlPath, value: Any) -> None:
        if not isinstance(value, str) or not ID_PATTERN.match(value):
            self.bad(path, "is not a valid id", "use letters, digits, '_', '.' or '-' (max 64)")

    def choice(self, path: YamlPath, value: Any, allowed: tuple[str, ...]) -> None:
        if value not in allowed:
            self.bad(path, "is not one of the allowed values", f"use one of {', '.join(allowed)}")

    def date(self, path: YamlPath, value: Any) -> None:
        if isinstance(value, dt.date):
            return
        try:
            dt.date.fromisoformat(str(value))
        except ValueError:
            self.bad(path, "is not a date", "write it as YYYY-MM-DD")

    def fingerprint(self, path: YamlPath, value: Any) -> None:
        if value is not None and not (isinstance(value, str) and FINGERPRINT_PATTERN.match(value)):
            self.bad(path, "is not a key fingerprint", "use `ed25519:` + 64 hex digits, or null")

    def items(
        self,
        path: YamlPath,
        value: Any,
        each: Callable[[YamlPath, Any], None],
        *,
        non_empty: bool = False,
    ) -> None:
        if non_empty and not value:
            self.bad(path, "must list at least one entry", f"add the entries; {FORMAT_FIX}")
            return
        if value is None:
            return
        if not isinstance(value, list):
            self.bad(path, "must be a list", "write one `- ` entry per item")
            return
        for index, item in enumerate(value):
            each((*path, index), item)

    def unique_ids(self, path: YamlPath, value: Any) -> None:
        seen: set[str] = set()
        for index, item in enumerate(value if isinstance(value, list) else []):
            ident = item.get("id") if isinstance(item, dict) else None
            if isinstance(ident, str) and ident in seen:
                self.findings.add(
                    "duplicate-id",
                    (*path, index, "id"),
                    f"id {ident!r} is used twice",
                    "give each entry its own id",
                )
            seen.add(str(ident))
