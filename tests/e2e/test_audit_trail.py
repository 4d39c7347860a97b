"""The audit trail end to end: real gateways publish to the real service (gunicorn on
loopback), an upload is refused, analysts link and query, the key epoch rotates and a node key
is revoked. Both sides' logs then verify, the gateway's held checkpoints prove the service's
exported log extends what it signed, a rewrite is caught, the DPO's report has the right counts
and names, and no identifier of the test data is in either log (the search is proved to see)."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from gateway.node import NodeConfig, Publication, publish
from gateway.schema import default_schema, default_schema_path
from keys import LinkageSecret, SigningKey, new_secret, rotated
from linkage.server import RunningService, start_service
from placelink.cli import main
from placelink.town import Town, generate_town, write_town
from policies.audit import entry_hash
from policies.audit_store import encode_entry
from policies.model import Policy, dump_policy, parse_policy
from tests.e2e.test_wire_leak import identifier_values, needles
from tests.oauth_clients import credentials, gateway_client_id, write_oauth_files
from tests.policy_keys import enrolled_document, example_trust

pytestmark = pytest.mark.e2e
ANALYST, ADMIN = "analyst", "admin"  # client ids of tests/oauth_clients.py


@dataclass
class World:
    town: Town
    out: Path
    service: RunningService
    keys: dict[str, SigningKey]
    policy: Policy
    published: dict[str, list[Publication]]
    export: Path


def _publish_all(world: World, secret: LinkageSecret) -> None:
    for agency in world.town.agency_rows:
        folder = world.out / "agencies"
        config = NodeConfig(
            agency,
            folder / f"{agency}.csv",
            folder / f"{agency}.mapping.yaml",
            world.out / "gateways" / agency,
            world.service.url,
        )
        made = publish(
            config,
            policy=world.policy,
            schema=default_schema(),
            secret=secret,
            node_key=world.keys[agency],
            trust=example_trust(),
            epoch=secret.epoch,
            today=dt.date.today(),
            auth=credentials(
                world.service.url, gateway_client_id(agency), world.keys[agency]
            ).headers,
        )
        world.published.setdefault(agency, []).append(made)


def _call(world: World, method: str, path: str, client_id: str, body: Any = None) -> Any:
    headers = credentials(world.service.url, client_id).headers()
    response = requests.request(
        method, world.service.url + path, json=body, timeout=300, headers=headers
    )
    assert response.ok, response.text
    return response


def _flow(world: World) -> None:
    policy_id = world.policy.policy_id
    secret = new_secret()
    _publish_all(world, secret)
    refused = requests.post(
        f"{world.service.url}/v1/batches",
        data=b"not a batch",
        timeout=30,
        headers={
            "Content-Type": "application/vnd.placelink.clks",
            **credentials(world.service.url, "police-secret").headers(),
        },
    )
    assert refused.status_code == 422
    _call(world, "POST", f"/v1/policies/{policy_id}/link-runs", ADMIN)
    for kind in ("trend", "cooccurrence"):
        body = {"kind": kind, "filter": {"min_agencies": 2}}
        _call(world, "POST", f"/v1/policies/{policy_id}/hotspots", ANALYST, body)
    _publish_all(world, rotated(secret))
    assert _call(world, "POST", f"/v1/policies/{policy_id}/link-runs", ADMIN).json()[
        "retired_batches"
    ] == len(world.town.agency_rows)
    police = world.keys[sorted(world.keys)[0]].fingerprint
    _call(world, "POST", "/v1/revocations", ADMIN, {"node_key": police})
    world.export.write_bytes(_call(world, "GET", "/v1/audit/entries", ADMIN).content)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    out = tmp_path_factory.mktemp("audit")
    town = generate_town(seed=5, people=150)
    write_town(town, out)
    keys = {agency: SigningKey.generate() for agency in town.agency_rows}
    document = enrolled_document(keys, today=dt.date.today())
    dump_policy(document, out / "policy.yaml")
    service = start_service(
        database_url=f"sqlite:///{out / 'db.sqlite'}",
        policy_paths=[out / "policy.yaml"],
        schema_paths=[default_schema_path()],
        log_path=out / "service.log",
        **write_oauth_files(out / "oauth", keys).service_kwargs(),
        trusted_dpo_keys=sorted(example_trust().trusted_dpo_keys),
    )
    made = World(town, out, service, keys, parse_policy(document), {}, out / "export.jsonl")
    try:
        _flow(made)
        yield made
    finally:
        service.stop()


def _cli(*args: str | Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main([str(a) for a in args])
    return code, capsys.readouterr().out


def test_both_sides_logs_verify_and_the_service_extends_what_it_signed(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    assert world.export.read_bytes() == Path(str(world.service.audit_log)).read_bytes()
    for agency, key in world.keys.items():
        state = world.out / "gateways" / agency
        code, out = _cli(
            "audit",
            "verify",
            "--log",
            state / "audit.jsonl",
            "--key",
            key.fingerprint,
            capsys=capsys,
        )
        assert code == 0 and out.startswith("OK:"), out
        held = state / "service-checkpoints.jsonl"
        assert len(held.read_text().splitlines()) == 2  # one per upload
        code, out = _cli(
            "audit",
            "verify",
            "--log",
            world.export,
            "--key",
            world.service.service_key,
            "--checkpoints",
            held,
            capsys=capsys,
        )
        assert code == 0 and "2 held checkpoints matched" in out, out


def test_a_rewritten_service_log_is_caught_by_a_gateway_checkpoint(
    world: World, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    entries = [json.loads(line) for line in world.export.read_text().splitlines()]
    first_query = next(i for i, e in enumerate(entries) if e["kind"] == "query")
    entries[first_query]["payload"]["decision"] = "refused"  # the operator hides an answer
    for index in range(first_query, len(entries)):  # and re-hashes the chain (no key needed)
        entries[index]["prev_hash"] = entries[index - 1]["entry_hash"]
        entries[index]["entry_hash"] = entry_hash(entries[index])
    forged = tmp_path / "forged.jsonl"
    forged.write_bytes(b"".join(encode_entry(e) for e in entries))
    agency = sorted(world.keys)[-1]
    held = world.out / "gateways" / agency / "service-checkpoints.jsonl"
    code, out = _cli(
        "audit",
        "verify",
        "--log",
        forged,
        "--key",
        world.service.service_key,
        "--checkpoints",
        held,
        capsys=capsys,
    )
    assert code == 1 and out.startswith("TAMPERED: first bad entry seq"), out
    assert "rewritten" in out or "bad-checkpoint" in out


def test_the_report_says_what_left_and_what_was_asked(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    logs = [world.out / "gateways" / a / "audit.jsonl" for a in world.keys]
    args = [x for log in [*logs, world.export] for x in ("--log", log)]
    signers = [*(key.fingerprint for key in world.keys.values()), world.service.service_key]
    args += [x for key in signers for x in ("--key", key)]  # the report verifies every log
    code, out = _cli(
        "audit", "report", *args, "--since", dt.date.today().isoformat(), "--json", capsys=capsys
    )
    assert code == 0
    report = json.loads(out)
    version = world.policy.version
    for agency, made in world.published.items():
        row = report["left_the_agency"][
            f"gateway:{agency} under {world.policy.policy_id} v{version}"
        ]
        batch = made[0].result.batch
        assert row["batches"] == 2 and row["epochs"] == [0, 1]
        assert row["records"] == sum(len(p.result.batch) for p in made)
        assert row["fields"] == sorted(f.name for f in batch.fields)
        assert row["attributes"] == sorted(batch.attribute_names)
    asked = report["asked_of_the_service"][f"{world.policy.policy_id} v{version}"]
    assert asked["uploads"] == {"accepted": 2 * len(world.keys)}
    assert asked["link_runs"] == {"ran": 2}
    assert asked["queries"] == {"cooccurrence answered": 1, "trend answered": 1}
    assert asked["analysts"] == 1
    refused = report["asked_of_the_service"]["(no policy)"]["uploads"]
    assert refused == {"refused (invalid-input)": 1}
    events = {e["event"] for e in report["key_events"]}
    assert events == {"revocation", "epoch_retirement"}
    assert _cli("audit", "report", *args, "--since", "2000-01-01", capsys=capsys)[0] == 0


def test_no_identifier_is_in_either_log(world: World) -> None:
    logs = [*(world.out / "gateways").rglob("*.jsonl"), world.export]
    content = b"".join(path.read_bytes() for path in logs)
    assert len(content) > 20_000, "the logs hold too little to mean anything"
    wanted = needles(identifier_values(world.town))
    assert [needle for needle in wanted if needle in content] == []
    planted = world.town.canonical_rows["health"][0]["nhs_number"]
    seeded = content + json.dumps({"payload": {"note": planted}}).encode()
    assert planted.encode() in [needle for needle in needles({planted}) if needle in seeded]
