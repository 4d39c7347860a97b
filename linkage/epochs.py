"""Key epochs at the linkage service: which epoch to link, and when to retire the old ones.

Encodings of different epochs are made under independent keys and are never compared: a link
run reads one epoch's batches only. While the gateways re-publish after a rotation, two epochs
are stored side by side and link runs stay on the old one. The switch: the newest epoch in which
every provider party of the policy has published is the one linked; once a link run on it has
finished, the older epochs' encodings are deleted and their uploads refused from then on.
"""

from __future__ import annotations

from keys.errors import InputError
from policies.model import Policy


def providers(policy: Policy) -> set[str]:
    """The party ids that must publish before an epoch is complete."""
    return {party.id for party in policy.parties if party.role == "provider" and party.node_key}


def complete_epochs(policy: Policy, sources_by_epoch: dict[int, set[str]]) -> list[int]:
    """The epochs in which every provider has published, oldest first."""
    needed = providers(policy)
    return sorted(e for e, found in sources_by_epoch.items() if needed and needed <= found)


def epoch_to_link(policy: Policy, sources_by_epoch: dict[int, set[str]], floor: int) -> int:
    """The newest complete epoch; before any is complete, the oldest epoch still accepted."""
    held = sorted(e for e in sources_by_epoch if e >= floor)
    if not held:
        raise InputError(
            f"no batches are stored under policy {policy.policy_id!r}",
            fix="publish from the gateways first",
        )
    complete = [e for e in complete_epochs(policy, sources_by_epoch) if e >= floor]
    return complete[-1] if complete else held[0]
