"""The gateway's side of enforcement: a node publishes nothing under a policy the trusted
DPOs have not all approved, and nothing the rules do not let its party upload. The service
URL points nowhere, so any attempt to send would fail differently."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from gateway.node import NodeConfig, publish
from gateway.schema import default_schema
from keys import SigningKey, new_secret
from keys.errors import ConfigError, PolicyError
from placelink.town import generate_town, write_town
from policies.approvals import PolicyTrust
from policies.model import parse_policy
from tests.policy_keys import enrolled_document, example_dpo_keys, example_trust, sign_document

NOWHERE = "http://127.0.0.1:9"
TODAY = dt.date(2026, 11, 1)


@pytest.fixture(scope="module")
def agency(tmp_path_factory: pytest.TempPathFactory) -> NodeConfig:
    out = tmp_path_factory.mktemp("node")
    write_town(generate_town(seed=2, people=60), out)
    agencies = out / "agencies"
    return NodeConfig("housing", agencies / "housing.csv", agencies / "housing.mapping.yaml",
                      out / "state", NOWHERE)  # fmt: skip


def _publish(
    config: NodeConfig, document: dict[str, Any], trust: PolicyTrust, key: SigningKey
) -> None:
    publish(config, policy=parse_policy(document), schema=default_schema(), secret=new_secret(),
            node_key=key, trust=trust, today=TODAY)  # fmt: skip


def test_an_unsigned_policy_publishes_nothing(agency: NodeConfig) -> None:
    key = SigningKey.generate()
    document = enrolled_document({"housing": key}, today=TODAY)
    document["approvals"] = []
    with pytest.raises(PolicyError, match="not approved"):
        _publish(agency, document, example_trust(), key)
    with pytest.raises(ConfigError, match="no trusted DPO keys"):
        _publish(agency, enrolled_document({"housing": key}, today=TODAY), PolicyTrust(), key)
    assert not (agency.state_dir / "housing.ids").exists()


def test_a_party_the_rules_do_not_let_upload_sends_nothing(agency: NodeConfig) -> None:
    key = SigningKey.generate()
    document = enrolled_document({"housing": key}, today=TODAY)
    document["approvals"] = []
    document["permissions"][0]["assignee"] = "police"  # P1: only police may upload
    signed = sign_document(document, example_dpo_keys().values())
    with pytest.raises(PolicyError, match="does not allow 'housing' to upload"):
        _publish(agency, signed, example_trust(), key)
    assert not (agency.state_dir / "housing.ids").exists()


def test_a_prohibited_item_is_not_sent(agency: NodeConfig) -> None:
    key = SigningKey.generate()
    document = enrolled_document({"housing": key}, today=TODAY)
    document["prohibitions"].append(
        {"id": "X9", "action": "upload", "assignee": "housing", "data_items": ["nhs_number"]}
    )
    signed = sign_document(document, example_dpo_keys().values())
    with pytest.raises(
        PolicyError, match=r"data item 'nhs_number'.*prohibition wins\) \(rules: X9\)"
    ):
        _publish(agency, signed, example_trust(), key)
