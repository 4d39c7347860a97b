"""A gateway node's settings for its API, read from PLACELINK_NODE_* environment variables,
and the key material and policy they point to.

Paths and digests come from the environment; secrets never do, except the two passphrases
(PLACELINK_SECRET_PASSPHRASE and PLACELINK_NODE_PASSPHRASE, as ``placelink gateway publish``
reads them), which may instead be read from a file named by the same variable with ``_FILE``
appended (a systemd credential, a mounted secret). The material is loaded once at start-up,
so a node with an unreadable key or an untrusted policy does not start (fail closed), and
again for every publication, so that a rotated key file or a new policy version is used from
the next publication on.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from gateway.node import NodeConfig
from gateway.oauth_client import ClientCredentials, token_url_for
from gateway.schema import schema_for
from gateway.staff_access import StaffTokens
from keys import LinkageSecret, SigningKey, load_signing_key, read_secret
from keys.errors import ConfigError
from keys.keyfiles import read_key_file
from policies.approvals import PolicyTrust, load_trusted_policy
from policies.linkage_schema import LinkageSchema
from policies.model import Policy

SECRET_PASSPHRASE = "PLACELINK_SECRET_PASSPHRASE"  # noqa: S105 (a variable's name)
NODE_PASSPHRASE = "PLACELINK_NODE_PASSPHRASE"  # noqa: S105 (a variable's name)
REQUIRED = {
    "PLACELINK_NODE_SOURCE": "this agency's party id in the policy",
    "PLACELINK_NODE_INPUT": "the agency's CSV extract",
    "PLACELINK_NODE_MAPPING": "the column mapping YAML",
    "PLACELINK_NODE_STATE_DIR": "the node's state folder (pseudonym maps, publication log)",
    "PLACELINK_NODE_SERVICE_URL": "the linkage service's URL",
    "PLACELINK_NODE_POLICY": "the signed sharing policy YAML",
    "PLACELINK_NODE_SECRET_FILE": "the linkage secret key file",
    "PLACELINK_NODE_KEY_FILE": "the node's signing key (node-signing.pem)",
}


@dataclass(frozen=True)
class NodeSettings:
    """Everything the node's API needs; passphrases are kept out of repr."""

    node: NodeConfig
    policy_path: Path
    secret_file: Path
    node_key_file: Path
    trust: PolicyTrust
    staff: StaffTokens
    schema_path: Path | None = None
    client_id: str = ""
    node_key_unencrypted_unsafe: bool = False
    secret_passphrase: str | None = field(default=None, repr=False)
    node_passphrase: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class NodeMaterial:
    """The loaded policy (trusted and in force), schema, linkage secret and node key."""

    policy: Policy
    schema: LinkageSchema
    secret: LinkageSecret
    node_key: SigningKey


def _digests(environ: Mapping[str, str], name: str, *, lower: bool = True) -> frozenset[str]:
    items = (d.strip() for d in environ.get(name, "").split(","))
    return frozenset(d.lower() if lower else d for d in items if d)


def _passphrase(environ: Mapping[str, str], name: str) -> str | None:
    """The passphrase in ``name``, else in the file named by ``name``_FILE, else None."""
    if environ.get(name):
        return environ[name]
    path = environ.get(f"{name}_FILE", "")
    if not path:
        return None
    text = read_key_file(Path(path), what="passphrase", fix=f"check {name}_FILE")
    return text.decode("utf-8").rstrip("\r\n") or None


def _optional_path(environ: Mapping[str, str], name: str) -> Path | None:
    value = environ.get(name, "").strip()
    return Path(value) if value else None


def settings_from_environment(environ: Mapping[str, str]) -> NodeSettings:
    """The node's settings; a missing required variable is named with what it should hold."""
    missing = [name for name in REQUIRED if not environ.get(name, "").strip()]
    if missing:
        raise ConfigError(
            f"the gateway node's API needs {', '.join(missing)}",
            fix="; ".join(f"set {name} to {REQUIRED[name]}" for name in missing),
        )
    value = {name: environ[name].strip() for name in REQUIRED}
    node = NodeConfig(
        source=value["PLACELINK_NODE_SOURCE"],
        input_csv=Path(value["PLACELINK_NODE_INPUT"]),
        mapping=Path(value["PLACELINK_NODE_MAPPING"]),
        state_dir=Path(value["PLACELINK_NODE_STATE_DIR"]),
        service_url=value["PLACELINK_NODE_SERVICE_URL"],
    )
    return NodeSettings(
        node=node,
        policy_path=Path(value["PLACELINK_NODE_POLICY"]),
        secret_file=Path(value["PLACELINK_NODE_SECRET_FILE"]),
        node_key_file=Path(value["PLACELINK_NODE_KEY_FILE"]),
        trust=PolicyTrust(_digests(environ, "PLACELINK_TRUSTED_DPO_KEYS", lower=False)),
        staff=StaffTokens(
            _digests(environ, "PLACELINK_NODE_STAFF_TOKEN_SHA256"),
            _digests(environ, "PLACELINK_NODE_OPERATOR_TOKEN_SHA256"),
        ),
        schema_path=_optional_path(environ, "PLACELINK_NODE_SCHEMA"),
        client_id=environ.get("PLACELINK_NODE_CLIENT_ID", "").strip() or f"{node.source}-gateway",
        node_key_unencrypted_unsafe=environ.get("PLACELINK_NODE_KEY_UNENCRYPTED_UNSAFE") == "1",
        secret_passphrase=_passphrase(environ, SECRET_PASSPHRASE),
        node_passphrase=_passphrase(environ, NODE_PASSPHRASE),
    )


def load_policy_for(settings: NodeSettings, *, today: dt.date) -> Policy:
    """The node's policy: valid, in force today and approved by every trusted DPO required."""
    return load_trusted_policy(settings.policy_path, trust=settings.trust, today=today)


def load_material(settings: NodeSettings, *, today: dt.date) -> NodeMaterial:
    """Open the policy, the schema and both key files (one opaque error if a key fails)."""
    policy = load_policy_for(settings, today=today)
    return NodeMaterial(
        policy=policy,
        schema=schema_for(settings.schema_path, pinned=policy.linkage_schema),
        secret=read_secret(settings.secret_file, passphrase=settings.secret_passphrase),
        node_key=load_signing_key(
            settings.node_key_file,
            passphrase=settings.node_passphrase,
            unencrypted_unsafe=settings.node_key_unencrypted_unsafe,
        ),
    )


def service_client(settings: NodeSettings, node_key: SigningKey) -> ClientCredentials:
    """The node's OAuth client at the linkage service (``private_key_jwt`` with its node key):
    its tokens upload batches and read this party's links. Client id: PLACELINK_NODE_CLIENT_ID,
    else ``<source>-gateway``, as the service's operator registered it."""
    url = token_url_for(settings.node.service_url)
    return ClientCredentials(url, settings.client_id, node_key=node_key)
