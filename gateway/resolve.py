"""Resolving the linkage service's entity links back to the agency's own record IDs.

The service knows only pseudonyms; the node's pseudonym map turns them into record IDs for the
agency's own staff. Nothing here leaves the agency.
"""

from __future__ import annotations

from typing import Any

import requests

from gateway.pseudonyms import PseudonymMap
from keys.errors import PlacelinkError


def fetch_links(
    service_url: str, policy_id: str, source: str, *, token: str
) -> list[dict[str, Any]]:
    url = f"{service_url.rstrip('/')}/v1/policies/{policy_id}/links/{source}"
    response = requests.get(url, headers={"Authorization": f"Bearer {token}"}, timeout=60)
    if not response.ok:
        raise PlacelinkError(
            f"the linkage service refused the links of {source!r} ({response.status_code})",
            fix="check the node's token and that a link run has finished",
        )
    links: list[dict[str, Any]] = response.json()["links"]
    return links


def resolve_links(links: list[dict[str, Any]], pseudonyms: PseudonymMap) -> dict[str, str]:
    """record ID -> entity ID for every link whose pseudonym this node made."""
    by_pseudonym = pseudonyms.record_for()
    return {
        by_pseudonym[link["pseudonym"]]: str(link["entity_id"])
        for link in links
        if link["pseudonym"] in by_pseudonym
    }
