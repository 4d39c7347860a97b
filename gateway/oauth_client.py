"""Getting access tokens from the linkage service (or an external issuer) for a gateway node,
an analyst's CLI or an operator's: OAuth 2.0 client credentials.

A node authenticates with ``private_key_jwt`` (RFC 7523), signing a one-minute assertion with
its node signing key (the key the DPO enrolled; the operator registers its public half); an
analyst or operator client uses its client secret, read from a file or an environment
variable, never argv. Tokens are cached and renewed a little before they expire.
"""

from __future__ import annotations

import base64
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import requests
from authlib.oauth2.rfc7523 import private_key_jwt_sign
from joserfc.jwk import OKPKey

from keys import SigningKey
from keys.errors import AccessError, ConfigError, PlacelinkError

TOKEN_PATH = "/v1/oauth/token"  # noqa: S105 (a path)
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
SECRET_ENV = "PLACELINK_CLIENT_SECRET"  # noqa: S105 (a variable's name)
CLIENT_ID_ENV = "PLACELINK_CLIENT_ID"
RENEW_BEFORE_S = 30


def token_url_for(service_url: str) -> str:
    return service_url.rstrip("/") + TOKEN_PATH


@dataclass
class ClientCredentials:
    """One client's credentials and its cached access token. Exactly one of ``node_key``
    (private_key_jwt) and ``client_secret`` is given."""

    token_url: str
    client_id: str
    node_key: SigningKey | None = field(default=None, repr=False)
    client_secret: str | None = field(default=None, repr=False)
    scope: str = ""
    clock: Callable[[], float] = time.time
    _token: str = field(default="", repr=False)
    _expires_at: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __post_init__(self) -> None:
        if (self.node_key is None) == (self.client_secret is None):
            raise ConfigError(
                f"client {self.client_id!r} needs exactly one of a node key and a client secret",
                fix=f"pass the node key, or set {SECRET_ENV} / a client secret file",
            )

    def token_request(self) -> tuple[dict[str, str], tuple[str, str] | None]:
        """The token request's form and, for a secret client, its HTTP Basic credentials."""
        form = {"grant_type": "client_credentials"}
        if self.scope:
            form["scope"] = self.scope
        if self.node_key is None:
            return form, (self.client_id, str(self.client_secret))
        key = OKPKey.import_key(self.node_key.private)
        assertion = private_key_jwt_sign(
            key, self.client_id, self.token_url, alg="Ed25519", expires_in=60
        )
        form["client_assertion_type"] = ASSERTION_TYPE
        form["client_assertion"] = assertion.decode() if isinstance(assertion, bytes) else assertion
        return form, None

    def _fetch(self) -> None:
        form, basic = self.token_request()
        try:
            response = requests.post(self.token_url, data=form, auth=basic, timeout=30)
        except requests.RequestException as exc:
            raise PlacelinkError(
                f"cannot reach the linkage service's token endpoint {self.token_url}: "
                f"{type(exc).__name__}",
                fix="check the service URL and that the service is running",
            ) from None
        body = response.json() if "json" in response.headers.get("Content-Type", "") else {}
        if not response.ok or "access_token" not in body:
            raise AccessError(
                f"the token endpoint refused client {self.client_id!r}: "
                f"{body.get('error', response.status_code)}",
                fix="check the client id, its key or secret, and its scopes in the clients file",
            )
        self._token = str(body["access_token"])
        self._expires_at = self.clock() + float(body.get("expires_in", 60))

    def access_token(self) -> str:
        """A valid access token, fetched or renewed when the cached one is near its end."""
        with self._lock:
            if not self._token or self.clock() >= self._expires_at - RENEW_BEFORE_S:
                self._fetch()
            return self._token

    def headers(self) -> dict[str, str]:
        """The ``Authorization`` header, for :func:`gateway.submit.upload` and friends."""
        return {"Authorization": f"Bearer {self.access_token()}"}


def read_client_secret(secret_file: Path | None) -> str | None:
    """The client secret from ``secret_file``, else ``PLACELINK_CLIENT_SECRET``, else None."""
    if secret_file is not None:
        try:
            return secret_file.read_text(encoding="utf-8").strip()
        except OSError:
            raise ConfigError(
                f"cannot read the client secret file {secret_file}", fix="check the path"
            ) from None
    return os.environ.get(SECRET_ENV, "").strip() or None


def new_client_secret() -> str:
    """A fresh client secret (256 random bits, URL-safe)."""
    return base64.urlsafe_b64encode(os.urandom(32)).decode("ascii").rstrip("=")
