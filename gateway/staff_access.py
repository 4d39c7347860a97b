"""Who may use a gateway node's own API: the agency's staff (read) and operators (publish).

The node's API is local to the agency and denies by default. A caller presents a bearer token;
the operator configures only the tokens' SHA-256 digests (PLACELINK_NODE_STAFF_TOKEN_SHA256,
PLACELINK_NODE_OPERATOR_TOKEN_SHA256), so the node never holds a token itself. An operator
token may also read. :func:`authorise` is the one decision: swap it (for example for OAuth2
tokens from the agency's identity provider) without touching the routes.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass
from typing import Literal

from keys.errors import AccessError, ConfigError

Role = Literal["staff", "operator"]
_DIGEST = re.compile(r"[0-9a-f]{64}")


class NotAuthenticated(AccessError):
    """No bearer token, or one that no configured digest matches."""


@dataclass(frozen=True)
class StaffTokens:
    """The SHA-256 digests (hex) of the tokens allowed to read (staff) and to publish."""

    staff_sha256: frozenset[str] = frozenset()
    operator_sha256: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        for setting, digests in (
            ("PLACELINK_NODE_STAFF_TOKEN_SHA256", self.staff_sha256),
            ("PLACELINK_NODE_OPERATOR_TOKEN_SHA256", self.operator_sha256),
        ):
            if any(not _DIGEST.fullmatch(d) for d in digests):
                raise ConfigError(
                    f"{setting} holds something that is not a hex SHA-256 digest",
                    fix="configure digests, never tokens: printf %s TOKEN | sha256sum",
                )


def _matches(digest: str, allowed: frozenset[str]) -> bool:
    found = False
    for candidate in allowed:  # compare with every digest, in constant time each
        found |= hmac.compare_digest(digest, candidate)
    return found


def caller_id(token_sha256: str) -> str:
    """A stable, non-secret name for a token's holder (a digest of its digest)."""
    return "staff:" + hashlib.sha256(bytes.fromhex(token_sha256)).hexdigest()[:16]


def authorise(authorization: str, *, role: Role, tokens: StaffTokens) -> str:
    """The caller's id when the ``Authorization`` header carries a token allowed ``role``;
    otherwise :class:`NotAuthenticated` (no or unknown token) or :class:`AccessError`."""
    token = authorization.removeprefix("Bearer ").strip()
    if not authorization.startswith("Bearer ") or not token:
        raise NotAuthenticated("a bearer token is required", fix="send Authorization: Bearer TOKEN")
    digest = hashlib.sha256(token.encode()).hexdigest()
    operator = _matches(digest, tokens.operator_sha256)
    if not operator and not _matches(digest, tokens.staff_sha256):
        raise NotAuthenticated("the bearer token is not valid here", fix="ask the node's operator")
    if role == "operator" and not operator:
        raise AccessError(
            "this needs an operator token", fix="ask the node's operator to publish, or for a token"
        )
    return caller_id(digest)
