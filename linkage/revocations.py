"""Revoking a node key: the service's revocation list, and the client that adds to it.

The list lives in the service's database (``revoked_keys``), so every gunicorn worker sees a
revocation from the next request on; intake (check 3) refuses a revoked key's uploads, and a
store that cannot be read refuses every upload (fail closed). A revocation is never undone: a
node that lost its key makes a new one, and the DPO enrols its fingerprint in a new policy
version.
"""

from __future__ import annotations

import re
from typing import Any

import requests

from keys.errors import AccessError, PlacelinkError

_FINGERPRINT = re.compile(r"^ed25519:[0-9a-f]{64}$")


def is_fingerprint(value: str) -> bool:
    """True for a node key fingerprint as policies name them (``ed25519:`` + 64 hex)."""
    return bool(_FINGERPRINT.match(value))


def revoke_at_service(service_url: str, node_key: str, *, token: str) -> dict[str, Any]:
    """Ask the service to revoke ``node_key`` (a token with the admin scope); returns its answer."""
    url = f"{service_url.rstrip('/')}/v1/revocations"
    try:
        response = requests.post(
            url,
            json={"node_key": node_key},
            headers={"Authorization": f"Bearer {token}"},
            timeout=60,
        )
    except requests.RequestException as exc:
        raise PlacelinkError(
            f"cannot reach the linkage service at {service_url}: {type(exc).__name__}",
            fix="check the service URL and that the service is running",
        ) from None
    if not response.ok:
        title = response.json().get("title", response.status_code) if response.content else ""
        raise AccessError(
            f"the linkage service refused the revocation: {title}",
            fix="check the admin client's credentials (scope admin) and the fingerprint",
        )
    answer: dict[str, Any] = response.json()
    return answer
