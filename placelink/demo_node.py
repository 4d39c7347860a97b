"""The demo's gateway node API step: one agency's node runs its own API (``gateway/app.py``),
its operator publishes through it (``POST /v1/publications``) and, once the service has
linked, its staff ask it which of their own records are linked (``GET /v1/links``), as agency
IT and caseworkers do (docs/agency-it.md). The node app runs in this process (no server to
install); its tokens are made for this run and only their SHA-256 digests are configured, and
its JSON request log goes to ``node.log`` in its state folder, not into the demo's output.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flask.testing import FlaskClient

from gateway.app import create_node_app
from gateway.node import NodeConfig
from gateway.node_settings import NodeSettings
from gateway.staff_access import StaffTokens
from keys import SigningKey, save_signing_key
from keys.errors import PlacelinkError
from policies.approvals import PolicyTrust
from policies.log_lines import JsonLineFormatter

_LOGGERS = ("placelink.http", "gateway")  # the node's request lines, and its app's


@dataclass(frozen=True)
class NodeApiFacts:
    """What the demo prints of the node API step (counts only)."""

    source: str
    records: int  # records the publication sent
    linked: int  # of them, resolved to an entity through the node's own pseudonym map
    entities: int
    shared: int  # records that share their entity with another record of the same agency

    def line(self) -> str:
        return (
            f"node API ({self.source}): operator POST /v1/publications sent {self.records} "
            f"records; staff GET /v1/links resolved {self.linked} of them to {self.entities} "
            f"entities ({self.shared} records share an entity with another of their own)"
        )


class DemoNode:
    """One agency's node API, configured from files this demo wrote."""

    def __init__(
        self,
        config: NodeConfig,
        *,
        policy_path: Path,
        secret_path: Path,
        node_key: SigningKey,
        trusted: list[str],
        today: dt.date,
    ) -> None:
        key_path = config.state_dir / "node-signing.pem"
        config.state_dir.mkdir(parents=True, exist_ok=True)
        save_signing_key(key_path, node_key, passphrase=None, unencrypted_unsafe=True)
        self._staff, self._operator = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        settings = NodeSettings(
            node=config,
            policy_path=policy_path,
            secret_file=secret_path,
            node_key_file=key_path,
            trust=PolicyTrust(frozenset(trusted)),
            staff=StaffTokens(
                frozenset({_digest(self._staff)}), frozenset({_digest(self._operator)})
            ),
            client_id=f"{config.source}-gateway",
            node_key_unencrypted_unsafe=True,
        )
        self.source = config.source
        self._log = logging.FileHandler(config.state_dir / "node.log", encoding="utf-8")
        self._log.setFormatter(JsonLineFormatter())
        app = create_node_app(settings, today=lambda: today)
        for name in _LOGGERS:
            logging.getLogger(name).addHandler(self._log)
            logging.getLogger(name).propagate = False
        self._client: FlaskClient = app.test_client()

    def close(self) -> None:
        """Give the loggers back as they were."""
        for name in _LOGGERS:
            logging.getLogger(name).removeHandler(self._log)
            logging.getLogger(name).propagate = True
        self._log.close()

    def publish(self) -> dict[str, Any]:
        """The operator's publication through the API: the log entry it answers with."""
        return self._call("post", "/v1/publications", self._operator, 201)

    def links(self) -> dict[str, Any]:
        """The staff's view of their own records' entities."""
        return self._call("get", "/v1/links", self._staff, 200)

    def facts(self, published: dict[str, Any]) -> NodeApiFacts:
        found = self.links()
        shared = sum(1 for link in found["links"] if link["records_in_entity"] > 1)
        return NodeApiFacts(
            self.source, int(published["records"]), int(found["records"]),
            int(found["entities"]), shared,
        )  # fmt: skip

    def _call(self, method: str, path: str, token: str, expected: int) -> dict[str, Any]:
        response = getattr(self._client, method)(path, headers={"Authorization": f"Bearer {token}"})
        body: dict[str, Any] = response.get_json()
        if response.status_code != expected:
            raise PlacelinkError(
                f"the {self.source} node's API refused {method.upper()} {path}: "
                f"{body.get('title')}",
                fix=str(body.get("detail", "")),
            )
        return body


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()
