"""Access tokens for the linkage service: issuing, verifying and the scoped caller.

Access tokens are short-lived JWTs (RFC 9068 shape) signed with Ed25519 (``alg: Ed25519``,
RFC 9864) by the service's own key, or by an external issuer whose JWKS the operator
configures. The token names its client (``sub``, ``client_id``), the party and policies it is
bound to and its ``scope``; ``exp``, ``iat``, ``jti``, ``iss`` and ``aud`` are checked on
every request. The clients file stays the authority: a caller's party, policies and scopes are
the registry's, narrowed by the token, so a client dropped from the file holds nothing.

Verification is a checklist; any failure is one opaque :class:`Unauthenticated` (HTTP 401):
(1) a bearer token is present; (2) its signature verifies under a trusted key and an allowed
algorithm; (3) ``iss`` and ``aud`` are this service's; (4) it is not expired and was not issued
in the future (a small leeway); (5) its client is registered. Then :meth:`Caller.require`
decides scope, policy and party (HTTP 403). This module imports no Flask.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet, OKPKey

from keys.errors import AccessError, ConfigError
from linkage.clients import Client

OWN_ALGORITHMS = ["Ed25519"]
# An external issuer may sign with these; never a symmetric (HS*) algorithm or "none".
EXTERNAL_ALGORITHMS = ["Ed25519", "ES256", "RS256", "PS256"]
DEFAULT_LIFETIME_S = 600
MIN_LIFETIME_S, MAX_LIFETIME_S = 60, 3600
LEEWAY_S = 30
DEFAULT_AUDIENCE = "placelink-linkage"


class Unauthenticated(AccessError):
    """No usable access token: missing, malformed, forged, expired or of an unknown client."""


@dataclass(frozen=True)
class Caller:
    """Who is calling, as a verified token and the clients file say."""

    client_id: str
    party: str
    policies: frozenset[str]
    scopes: frozenset[str]
    token_id: str

    def require(self, scope: str, *, policy_id: str | None = None) -> Caller:
        """Raise :class:`AccessError` (403) unless the caller holds ``scope`` and, where a
        policy is named, is bound to it."""
        if scope not in self.scopes:
            raise AccessError(
                f"this token does not carry the scope {scope!r}",
                fix="ask the operator to grant the scope to your client, then get a new token",
            )
        if policy_id is not None and policy_id not in self.policies:
            raise AccessError(
                "this token is not bound to the policy in the path",
                fix="use a client registered for that policy (clients file, `policies:`)",
            )
        return self


def _unauthenticated() -> Unauthenticated:
    return Unauthenticated(
        "a valid access token is required",
        fix="get a token from POST /v1/oauth/token and send Authorization: Bearer TOKEN",
    )


def bearer_token(authorization: str | None) -> str:
    """The token of an ``Authorization: Bearer TOKEN`` header (checklist step 1)."""
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not token or " " in token.strip() or token != token.strip():
        raise _unauthenticated()
    return token


def okp_public_jwk(public_raw: bytes, *, kid: str = "") -> OKPKey:
    """A raw Ed25519 public key as a JWK (for client assertions and the JWKS)."""
    params = {"kid": kid} if kid else {}
    key = OKPKey.import_key({"kty": "OKP", "crv": "Ed25519", "x": _b64url(public_raw), **params})
    return key


def _b64url(data: bytes) -> str:
    import base64

    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


@dataclass
class TokenAuthority:
    """Issues and verifies the service's access tokens.

    With ``signing_key`` the service is its own issuer (the token endpoint works); with
    ``external_jwks`` it only verifies tokens of that issuer (the token endpoint refuses).
    ``clock`` returns seconds since the epoch; tests inject one to make tokens expire."""

    clients: Mapping[str, Client]
    issuer: str
    audience: str = DEFAULT_AUDIENCE
    signing_key: Ed25519PrivateKey | None = None
    external_jwks: KeySet | None = None
    lifetime_s: int = DEFAULT_LIFETIME_S
    clock: Callable[[], float] = time.time
    # Where accepted assertions are kept for every worker (linkage.assertion_ledger, bound by
    # create_app); without one, in this process only.
    replay_ledger: Callable[[str, float, float], bool] | None = field(default=None, repr=False)
    _seen_assertions: dict[str, float] = field(default_factory=dict, repr=False)
    _keys: KeySet = field(init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __post_init__(self) -> None:
        if (self.signing_key is None) == (self.external_jwks is None):
            raise ConfigError(
                "the token authority needs exactly one of a signing key and an external JWKS",
                fix="set PLACELINK_OAUTH_SIGNING_KEY, or PLACELINK_OAUTH_JWKS and "
                "PLACELINK_OAUTH_ISSUER",
            )
        if not MIN_LIFETIME_S <= self.lifetime_s <= MAX_LIFETIME_S:
            raise ConfigError(
                f"the token lifetime must be {MIN_LIFETIME_S}-{MAX_LIFETIME_S} seconds",
                fix="set PLACELINK_TOKEN_LIFETIME to e.g. 600",
            )
        self._keys = self.external_jwks or KeySet([self._own_jwk()])

    @property
    def issues_tokens(self) -> bool:
        return self.signing_key is not None

    def _own_jwk(self) -> OKPKey:
        assert self.signing_key is not None
        raw = self.signing_key.public_key().public_bytes_raw()
        return okp_public_jwk(raw, kid=_b64url(raw)[:16])

    def jwks(self) -> dict[str, Any]:
        """The public keys tokens are verified with (published for resource servers)."""
        return dict(self._keys.as_dict(private=False))

    def issue(self, client: Client, scopes: frozenset[str]) -> dict[str, Any]:
        """A signed access token for ``client`` with ``scopes`` (already checked against the
        registry), as the token endpoint returns it."""
        if self.signing_key is None:
            raise AccessError(
                "this service does not issue tokens: an external issuer does",
                fix="get the token from the issuer named in PLACELINK_OAUTH_ISSUER",
            )
        now = int(self.clock())
        claims = {
            "iss": self.issuer,
            "aud": self.audience,
            "sub": client.client_id,
            "client_id": client.client_id,
            "party": client.party,
            "policies": sorted(client.policies),
            "scope": " ".join(sorted(scopes)),
            "iat": now,
            "exp": now + self.lifetime_s,
            "jti": secrets.token_urlsafe(16),
        }
        own = self._own_jwk()
        private = OKPKey.import_key(self.signing_key)
        header = {"alg": "Ed25519", "typ": "at+jwt", "kid": own.kid}
        token = jwt.encode(header, claims, private, algorithms=OWN_ALGORITHMS)
        return {
            "access_token": token,
            "token_type": "Bearer",
            "expires_in": self.lifetime_s,
            "scope": claims["scope"],
        }

    def _decode(self, token: str) -> dict[str, Any]:
        """(2)-(4) of the checklist: signature, issuer and audience, times."""
        algorithms = EXTERNAL_ALGORITHMS if self.external_jwks is not None else OWN_ALGORITHMS
        try:
            decoded = jwt.decode(token, self._keys, algorithms=algorithms)
            registry = jwt.JWTClaimsRegistry(
                now=int(self.clock()),
                leeway=LEEWAY_S,
                iss={"essential": True, "value": self.issuer},
                aud={"essential": True, "value": self.audience},
                exp={"essential": True},
                sub={"essential": True},
            )
            registry.validate(decoded.claims)
        except (JoseError, ValueError, TypeError):
            raise _unauthenticated() from None
        claims: dict[str, Any] = decoded.claims
        issued = claims.get("iat")
        if not isinstance(issued, int) or issued > self.clock() + LEEWAY_S:
            raise _unauthenticated()
        return claims

    def verify(self, token: str) -> Caller:
        """The caller a bearer token speaks for, or :class:`Unauthenticated`."""
        claims = self._decode(token)
        client = self.clients.get(str(claims.get("client_id") or claims["sub"]))
        if client is None:
            raise _unauthenticated()
        granted = frozenset(str(claims.get("scope", "")).split())
        bound = claims.get("policies")
        policies = client.policies
        if isinstance(bound, list):
            policies = policies & frozenset(str(p) for p in bound)
        return Caller(
            client_id=client.client_id,
            party=client.party,
            policies=policies,
            scopes=client.scopes & granted,
            token_id=str(claims.get("jti", "")),
        )

    def first_use_of_assertion(self, jti: str, expires_at: float) -> bool:
        """Record a client assertion's ``jti``; False when it was seen before (a replay).
        The record lives in the ledger (the service's database) or, without one, in this
        process, for as long as the assertion is valid."""
        now = self.clock()
        if self.replay_ledger is not None:
            return self.replay_ledger(jti, expires_at, now)
        with self._lock:
            for stale in [k for k, t in self._seen_assertions.items() if t < now - LEEWAY_S]:
                del self._seen_assertions[stale]
            if jti in self._seen_assertions:
                return False
            self._seen_assertions[jti] = expires_at
            return True
