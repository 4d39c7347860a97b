"""The OAuth2 client registry: who may ask the linkage service for a token, and for what.

The operator writes one YAML file (``PLACELINK_CLIENTS``); each client acts for one party of
the policies it is bound to, with the scopes it may hold, and proves itself either with a
client secret (the file holds only its scrypt hash, never the secret) or with an Ed25519 key
(``private_key_jwt``; a gateway reuses its node signing key)::

    clients:
      - client_id: police-gateway
        party: police
        policies: [seabrook-task-force]
        scopes: [submit]
        public_key: 3b6a27bcceb6a42d62a3a8d02a6f0d73653215771de243a63ac048a18b59da29
      - client_id: analyst-1
        party: task_force
        policies: [seabrook-task-force]
        scopes: [query:hotspots]
        secret_hash: "scrypt$16384$8$1$..."

The registry is the authority on bindings: a token only ever grants what its client holds in
the file now, so removing a client (and restarting) withdraws its tokens at once.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from keys.errors import ConfigError

SCOPES = ("submit", "links:read", "query:hotspots", "admin")
_CLIENT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_HEX_KEY = re.compile(r"^[0-9a-f]{64}$")
# scrypt at n=2**14, r=8, p=1 (the interactive-login parameters of RFC 7914 section 2).
_SCRYPT = {"n": 2**14, "r": 8, "p": 1}
_MIN_SECRET_CHARS = 32


@dataclass(frozen=True, repr=False)
class Client:
    """One registered client: the party it acts for, its policies and scopes, and how it
    authenticates (``secret_hash`` or ``public_key``, exactly one)."""

    client_id: str
    party: str
    policies: frozenset[str]
    scopes: frozenset[str]
    secret_hash: str = ""
    public_key: bytes = b""

    @property
    def uses_private_key_jwt(self) -> bool:
        return bool(self.public_key)

    def check_secret(self, secret: str) -> bool:
        """True when ``secret`` is this client's secret (constant-time; a key client has none)."""
        return bool(self.secret_hash) and secret_matches(self.secret_hash, secret)

    def __repr__(self) -> str:
        return f"Client({self.client_id!r}, party={self.party!r})"


def hash_client_secret(secret: str, *, salt: bytes | None = None) -> str:
    """The line the clients file holds for ``secret``: ``scrypt$n$r$p$salt$hash`` (base64)."""
    if len(secret) < _MIN_SECRET_CHARS:
        raise ConfigError(
            f"a client secret must have at least {_MIN_SECRET_CHARS} characters",
            fix="make one with `placelink keys client-secret`",
        )
    salt = salt if salt is not None else secrets.token_bytes(16)
    digest = hashlib.scrypt(secret.encode(), salt=salt, dklen=32, **_SCRYPT)
    parts = [str(_SCRYPT[k]) for k in ("n", "r", "p")] + [_b64(salt), _b64(digest)]
    return "scrypt$" + "$".join(parts)


def secret_matches(stored: str, secret: str) -> bool:
    """Constant-time check of ``secret`` against a stored hash; a malformed hash never matches."""
    parts = stored.split("$")
    if len(parts) != 6 or parts[0] != "scrypt":
        return False
    try:
        n, r, p = (int(x) for x in parts[1:4])
        salt, expected = _unb64(parts[4]), _unb64(parts[5])
        digest = hashlib.scrypt(
            secret.encode(), salt=salt, n=n, r=r, p=p, dklen=len(expected), maxmem=2**27
        )
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(digest, expected)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text.encode("ascii"), validate=True)


def _strings(value: Any, where: str, *, allowed: tuple[str, ...] = ()) -> frozenset[str]:
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{where} must be a non-empty list of names", fix=f"set {where}: [..]")
    unknown = sorted(v for v in value if allowed and v not in allowed)
    if unknown:
        raise ConfigError(
            f"{where} names an unknown scope {unknown[0]!r}", fix=f"use only {', '.join(allowed)}"
        )
    return frozenset(value)


def _parse_client(entry: Any, where: str) -> Client:
    if not isinstance(entry, dict):
        raise ConfigError(f"{where} must be a mapping", fix="see docs/operator.md")
    client_id, party = entry.get("client_id"), entry.get("party")
    if not isinstance(client_id, str) or not _CLIENT_ID.match(client_id):
        raise ConfigError(
            f"{where}.client_id is missing or not a plain name",
            fix="use letters, digits, '.', '_' or '-' (at most 64)",
        )
    if not isinstance(party, str) or not party:
        raise ConfigError(f"{where}.party is missing", fix="name the policy party it acts for")
    secret_hash, public_hex = entry.get("secret_hash", ""), entry.get("public_key", "")
    if bool(secret_hash) == bool(public_hex):
        raise ConfigError(
            f"{where} must have exactly one of secret_hash and public_key",
            fix="a gateway: public_key (its node signing key); an analyst: secret_hash",
        )
    if public_hex and (not isinstance(public_hex, str) or not _HEX_KEY.match(public_hex)):
        raise ConfigError(
            f"{where}.public_key is not a raw Ed25519 public key in hex",
            fix="copy signing_public_key from `placelink keys node new --json`",
        )
    if secret_hash and (not isinstance(secret_hash, str) or not secret_hash.startswith("scrypt$")):
        raise ConfigError(
            f"{where}.secret_hash is not a scrypt hash",
            fix="copy the line `placelink keys client-secret` prints (never the secret itself)",
        )
    return Client(
        client_id=client_id,
        party=party,
        policies=_strings(entry.get("policies"), f"{where}.policies"),
        scopes=_strings(entry.get("scopes"), f"{where}.scopes", allowed=SCOPES),
        secret_hash=str(secret_hash or ""),
        public_key=bytes.fromhex(public_hex) if public_hex else b"",
    )


def parse_clients(document: Any, *, where: str = "clients file") -> dict[str, Client]:
    """The registry from a parsed clients document; every error names the entry and field."""
    entries = document.get("clients") if isinstance(document, dict) else None
    if not isinstance(entries, list):
        raise ConfigError(f"{where} has no `clients:` list", fix="see docs/operator.md")
    registry: dict[str, Client] = {}
    for index, entry in enumerate(entries):
        client = _parse_client(entry, f"{where}: clients[{index}]")
        if client.client_id in registry:
            raise ConfigError(
                f"{where}: clients[{index}].client_id is used twice", fix="make ids unique"
            )
        registry[client.client_id] = client
    return registry


def load_clients(path: Path) -> dict[str, Client]:
    """Read and check the operator's clients file."""
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        raise ConfigError(
            f"cannot read the clients file {path}", fix="check PLACELINK_CLIENTS and the YAML"
        ) from None
    return parse_clients(document, where=str(path))
