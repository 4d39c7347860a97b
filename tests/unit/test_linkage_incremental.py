"""Incremental link runs in the linkage service: a new agency's batch links into the entities
of the latest run, compares only pairs involving its records, and keeps entity ids stable."""

from __future__ import annotations

from linkage.service import LinkageService
from tests.unit import test_linkage_service as base
from tests.unit.test_linkage_service import AGENCIES, World, send, submission, upload_of

world = base.world  # the same encoded town, policy and service fixtures
service = base.service


def _entities(service: LinkageService, world: World) -> dict[str, str]:
    found = {}
    for agency in AGENCIES:
        for pseudonym, entity in service.entity_links(world.policy.policy_id, agency):
            found[f"{agency}:{pseudonym}"] = entity
    return found


def test_a_new_batch_links_incrementally_with_stable_ids(
    service: LinkageService, world: World
) -> None:
    policy_id = world.policy.policy_id
    *earlier, last = AGENCIES
    for agency in earlier:
        send(service, upload_of(submission(world, agency)))
    first = service.run_linkage(policy_id)
    before = _entities(service, world)
    send(service, upload_of(submission(world, last)))
    later = service.run_linkage(policy_id, incremental=True)
    after = _entities(service, world)
    assert later["incremental"] and not first["incremental"]
    assert later["records"] == first["records"] + len(world.batches[last])
    kept = sum(after[key] == entity for key, entity in before.items())
    assert kept / len(before) >= 0.99
    full = service.run_linkage(policy_id)
    assert later["candidate_pairs"] < full["candidate_pairs"]
    assert "model" not in later  # the model is kept for the next run, not released


def test_incremental_without_a_previous_run_links_everything(
    service: LinkageService, world: World
) -> None:
    for agency in AGENCIES:
        send(service, upload_of(submission(world, agency)))
    summary = service.run_linkage(world.policy.policy_id, incremental=True)
    assert not summary["incremental"]
    assert summary["records"] == sum(len(b) for b in world.batches.values())
