"""Shared test helper: OAuth clients of the linkage service and real tokens for them.

Every agency's gateway is a ``private_key_jwt`` client signing with its node key (scopes
``submit`` and ``links:read``); ``analyst`` (party task_force, ``query:hotspots``), ``admin``
(party linkage, ``admin``) and ``police-secret`` (party police, ``submit``/``links:read``) use
client secrets. The secrets below are fixed TEST values, public by design; the service's
token-signing key is made fresh per process.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from flask.testing import FlaskClient

from gateway.oauth_client import ClientCredentials, token_url_for
from keys import SigningKey, save_signing_key
from linkage.auth import TokenAuthority
from linkage.clients import hash_client_secret, parse_clients

POLICY_ID = "seabrook-task-force"
TEST_SECRETS = {  # TEST secrets only
    "analyst": "test-analyst-secret-0000000000000000",
    "admin": "test-admin-secret-00000000000000000000",
    "police-secret": "test-police-secret-0000000000000000",
    "other-analyst": "test-other-analyst-secret-000000000",
    "police-analyst": "test-police-analyst-secret-00000000",
    "elsewhere": "test-elsewhere-secret-00000000000000",
}
SECRET_CLIENTS = {  # client id -> (party, scopes, policies)
    "analyst": ("task_force", ["query:hotspots"], [POLICY_ID]),
    "admin": ("linkage", ["admin"], [POLICY_ID]),
    "police-secret": ("police", ["submit", "links:read"], [POLICY_ID]),
    "other-analyst": ("task_force", ["query:hotspots"], ["another-policy"]),
    "police-analyst": ("police", ["query:hotspots"], [POLICY_ID]),
    "elsewhere": ("police", ["submit", "links:read", "query:hotspots", "admin"], ["another"]),
}


def gateway_client_id(party: str) -> str:
    return f"{party}-gateway"


@functools.cache
def _hash(secret: str) -> str:
    return hash_client_secret(secret, salt=b"test-salt-000000")


def clients_document(node_keys: Mapping[str, SigningKey | bytes]) -> dict[str, Any]:
    """Every gateway (node key, or its raw public half) and the secret clients."""
    entries: list[dict[str, Any]] = [
        {
            "client_id": gateway_client_id(party),
            "party": party,
            "policies": [POLICY_ID],
            "scopes": ["submit", "links:read"],
            "public_key": (key if isinstance(key, bytes) else key.public_raw).hex(),
        }
        for party, key in node_keys.items()
    ]
    for client_id, (party, scopes, policies) in SECRET_CLIENTS.items():
        entries.append(
            {"client_id": client_id, "party": party, "policies": policies, "scopes": scopes,
             "secret_hash": _hash(TEST_SECRETS[client_id])}
        )  # fmt: skip
    return {"clients": entries}


@functools.cache
def service_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


class Clock:
    """A settable clock: ``advance`` makes every token the authority issued expire."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += seconds


def authority(
    node_keys: Mapping[str, SigningKey], *, clock: Callable[[], float] = time.time
) -> TokenAuthority:
    """The in-process authority for ``create_app(..., auth=...)``."""
    clients = parse_clients(clients_document(node_keys))
    return TokenAuthority(clients, "placelink-linkage", signing_key=service_key(), clock=clock)


@dataclass(frozen=True)
class OAuthFiles:
    clients: Path
    signing_key: Path

    def service_kwargs(self) -> dict[str, Any]:
        """What :func:`linkage.server.start_service` needs for OAuth."""
        return {
            "clients_path": self.clients,
            "oauth_signing_key": self.signing_key,
            "oauth_key_unencrypted_unsafe": True,
        }


def write_oauth_files(folder: Path, node_keys: Mapping[str, SigningKey | bytes]) -> OAuthFiles:
    """The clients file and the service's signing key (unencrypted: tests only) on disk."""
    folder.mkdir(parents=True, exist_ok=True)
    clients = folder / "clients.yaml"
    clients.write_text(yaml.safe_dump(clients_document(node_keys)), encoding="utf-8")
    key = folder / "oauth-signing.pem"
    if not key.exists():
        save_signing_key(key, SigningKey(service_key()), passphrase=None, unencrypted_unsafe=True)
    return OAuthFiles(clients, key)


def credentials(
    base_url: str, client_id: str, node_key: SigningKey | None = None, scope: str = ""
) -> ClientCredentials:
    """The client's credentials against the service at ``base_url``."""
    secret = None if node_key is not None else TEST_SECRETS[client_id]
    return ClientCredentials(
        token_url_for(base_url), client_id, node_key=node_key, client_secret=secret, scope=scope
    )


def flask_token(
    client: FlaskClient, client_id: str, node_key: SigningKey | None = None, scope: str = ""
) -> str:
    """A real token from the app's real token endpoint, through Flask's test client."""
    form, basic = credentials("http://localhost", client_id, node_key, scope).token_request()
    headers = {}
    if basic is not None:
        import base64

        pair = f"{basic[0]}:{basic[1]}".encode()
        headers["Authorization"] = "Basic " + base64.b64encode(pair).decode()
    response = client.post("/v1/oauth/token", data=form, headers=headers)
    assert response.status_code == 200, response.get_data(as_text=True)
    token: str = response.get_json()["access_token"]
    return token


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
