"""The token authority from the operator's settings (environment variables, files).

- ``PLACELINK_CLIENTS``: the clients file (:mod:`linkage.clients`). Unset: no client exists
  and every gated endpoint denies.
- ``PLACELINK_OAUTH_SIGNING_KEY``: the service's Ed25519 token-signing key file (PKCS #8 PEM as
  ``placelink keys dpo new`` writes it), its passphrase in
  ``PLACELINK_OAUTH_KEY_PASSPHRASE``; an unencrypted file only with
  ``PLACELINK_OAUTH_KEY_UNENCRYPTED_UNSAFE=1`` (tests and the demo).
- ``PLACELINK_OAUTH_JWKS`` (a file path or an https URL) with ``PLACELINK_OAUTH_ISSUER``:
  verify an external issuer's tokens instead; the token endpoint then refuses.
- ``PLACELINK_OAUTH_ISSUER`` (default ``placelink-linkage``), ``PLACELINK_OAUTH_AUDIENCE``
  (default ``placelink-linkage``), ``PLACELINK_TOKEN_LIFETIME`` (seconds, default 600,
  60-3600).

Keys and secrets come from files, never argv.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import requests
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from keys.errors import ConfigError
from keys.keyfiles import load_ed25519_key
from linkage.auth import DEFAULT_AUDIENCE, DEFAULT_LIFETIME_S, TokenAuthority
from linkage.clients import load_clients

DEFAULT_ISSUER = "placelink-linkage"


def load_jwks(location: str) -> KeySet:
    """An external issuer's public keys, from a JWKS file or URL (public keys only)."""
    try:
        if location.startswith(("https://", "http://")):
            response = requests.get(location, timeout=10)
            response.raise_for_status()
            document: Any = response.json()
        else:
            document = json.loads(Path(location).read_text(encoding="utf-8"))
        keys = KeySet.import_key_set(document)
    except (OSError, ValueError, requests.RequestException, JoseError, TypeError, KeyError):
        raise ConfigError(
            "cannot read the JWKS named in PLACELINK_OAUTH_JWKS",
            fix="name a JWKS file or the issuer's jwks_uri",
        ) from None
    if any(key.is_private for key in keys.keys):
        raise ConfigError(
            "the JWKS in PLACELINK_OAUTH_JWKS holds a private key",
            fix="give the service the issuer's public keys only",
        )
    return keys


def _lifetime(env: Mapping[str, str]) -> int:
    raw = env.get("PLACELINK_TOKEN_LIFETIME", "")
    if not raw:
        return DEFAULT_LIFETIME_S
    try:
        return int(raw)
    except ValueError:
        raise ConfigError(
            "PLACELINK_TOKEN_LIFETIME is not a whole number of seconds", fix="e.g. 600"
        ) from None


def authority_from_environment(env: Mapping[str, str]) -> TokenAuthority | None:
    """The authority the settings describe, or None when no clients file is configured."""
    clients_path = env.get("PLACELINK_CLIENTS", "")
    if not clients_path:
        return None
    clients = load_clients(Path(clients_path))
    jwks = env.get("PLACELINK_OAUTH_JWKS", "")
    key_path = env.get("PLACELINK_OAUTH_SIGNING_KEY", "")
    common: dict[str, Any] = {
        "audience": env.get("PLACELINK_OAUTH_AUDIENCE", "") or DEFAULT_AUDIENCE,
        "lifetime_s": _lifetime(env),
    }
    if jwks:
        issuer = env.get("PLACELINK_OAUTH_ISSUER", "")
        if not issuer:
            raise ConfigError(
                "PLACELINK_OAUTH_JWKS is set without PLACELINK_OAUTH_ISSUER",
                fix="set PLACELINK_OAUTH_ISSUER to the external issuer's `iss`",
            )
        return TokenAuthority(clients, issuer, external_jwks=load_jwks(jwks), **common)
    if not key_path:
        raise ConfigError(
            "PLACELINK_CLIENTS is set but no token-signing key is",
            fix="set PLACELINK_OAUTH_SIGNING_KEY (or PLACELINK_OAUTH_JWKS for an external issuer)",
        )
    passphrase = env.get("PLACELINK_OAUTH_KEY_PASSPHRASE") or None
    key = load_ed25519_key(
        Path(key_path),
        passphrase=passphrase,
        unencrypted_unsafe=env.get("PLACELINK_OAUTH_KEY_UNENCRYPTED_UNSAFE", "") == "1",
    )
    issuer = env.get("PLACELINK_OAUTH_ISSUER", "") or DEFAULT_ISSUER
    return TokenAuthority(clients, issuer, signing_key=key, **common)
