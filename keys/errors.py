"""The one exception hierarchy of placelink.

It lives in ``keys`` because ``keys`` is the root of the package graph
(placelink -> gateway, linkage -> policies -> keys): every package can import it and none
has to import a sibling to raise a placelink error.

Every message names the file, field or row at fault and the fix. No message ever carries a
payload value, key, token or identifier.
"""

from __future__ import annotations


class PlacelinkError(Exception):
    """Root of every error placelink raises on purpose."""

    def __init__(self, message: str, *, fix: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.fix = fix

    def diagnostics(self) -> str:
        """The message and the remedy, for a person at a terminal."""
        return f"{self.message}\n  fix: {self.fix}" if self.fix else self.message

    def __str__(self) -> str:
        return self.diagnostics()


class ConfigError(PlacelinkError):
    """A configuration, schema or mapping file is missing or wrong."""


class PolicyError(PlacelinkError):
    """A sharing policy is invalid, or forbids what was asked."""


class KeyMaterialError(PlacelinkError):
    """A key or secret is missing, too short, or failed a check (deliberately opaque)."""


class InputError(PlacelinkError):
    """Input data (a CSV, a .clks file, an upload) is malformed."""


class StorageError(PlacelinkError):
    """The store refused or failed an operation; nothing partial was kept."""


class AccessError(PlacelinkError):
    """The caller is not allowed to do this."""
