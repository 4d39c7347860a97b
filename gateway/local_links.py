"""The linkage service's links, resolved for the agency's own staff: which entity each of our
records belongs to, and which of our records share one.

The service releases to a provider only its own records' entity ids (the policy's
``view_links`` permission), as pseudonyms; the node's pseudonym maps (every key epoch's) turn
them into the agency's record IDs. Nothing here leaves the agency, and nothing is stored.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import requests

from gateway.node import NodeConfig, pseudonym_map_paths
from gateway.pseudonyms import PseudonymMap
from gateway.resolve import fetch_links
from keys.errors import PlacelinkError


class LinkageServiceError(PlacelinkError):
    """The linkage service could not be reached, or refused the node's request."""


@dataclass(frozen=True)
class LocalLink:
    record_id: str
    entity_id: str
    records_in_entity: int  # how many of this agency's records share the entity


@dataclass(frozen=True)
class LocalLinks:
    policy_id: str
    source: str
    links: list[LocalLink]
    unresolved: int  # pseudonyms no map of this node knows (a lost or older map)

    @property
    def entities(self) -> int:
        return len({link.entity_id for link in self.links})


def _records_by_pseudonym(config: NodeConfig) -> dict[str, str]:
    """pseudonym -> record ID over every epoch's map (a record has one pseudonym per epoch)."""
    merged: dict[str, str] = {}
    for path in pseudonym_map_paths(config):
        merged.update(PseudonymMap.load(path).record_for())
    return merged


def local_links(config: NodeConfig, policy_id: str, *, token: str) -> LocalLinks:
    """Fetch this node's links under ``policy_id`` and resolve them to record IDs."""
    try:
        links = fetch_links(config.service_url, policy_id, config.source, token=token)
    except requests.RequestException as exc:
        raise LinkageServiceError(
            f"cannot reach the linkage service at {config.service_url}: {type(exc).__name__}",
            fix="check PLACELINK_NODE_SERVICE_URL and that the service is running",
        ) from None
    except PlacelinkError as exc:
        raise LinkageServiceError(exc.message, fix=exc.fix) from None
    by_pseudonym = _records_by_pseudonym(config)
    resolved = {
        by_pseudonym[str(link["pseudonym"])]: str(link["entity_id"])
        for link in links
        if str(link["pseudonym"]) in by_pseudonym
    }
    sizes = Counter(resolved.values())
    found = [LocalLink(r, e, sizes[e]) for r, e in sorted(resolved.items())]
    return LocalLinks(policy_id, config.source, found, unresolved=len(links) - len(resolved))
