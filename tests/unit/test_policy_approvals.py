"""DPO approvals and trust: signing, the verification checklist, key files, and the linkage
service refusing unsigned, wrongly signed, untrusted, expired and suspended policies at load
time, including the path where the trust setting is missing (it must fail closed)."""

from __future__ import annotations

import copy
import datetime as dt
import os
import stat
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from gateway.schema import default_schema_path
from keys import SigningKey, fingerprint, load_signing_key, save_signing_key
from keys.errors import ConfigError, KeyMaterialError, PolicyError
from linkage.app import app_from_environment, create_app
from policies.approval_file import render_approvals, sign_policy_file
from policies.approvals import (
    PolicyTrust,
    approval_message,
    check_approved,
    load_trusted_policy,
    make_approval,
    verify_approvals,
)
from policies.located import load_located
from policies.model import dump_policy, load_policy, parse_policy
from tests.policy_keys import (
    EXAMPLE_POLICY,
    enrolled_document,
    example_dpo_keys,
    example_key,
    example_trust,
    sign_document,
)

TODAY = dt.date(2026, 11, 1)
REQUIRED = ["police", "childrens_services", "housing", "health", "school", "linkage"]


def test_the_example_is_approved_by_every_required_dpo() -> None:
    report = verify_approvals(load_policy(EXAMPLE_POLICY), trusted=example_trust().trusted_dpo_keys)
    assert report.complete and list(report.approved) == REQUIRED and report.missing == ()


def test_one_council_signature_covers_both_council_parties() -> None:
    document = enrolled_document({})
    council = example_dpo_keys()["council-dpo"].fingerprint
    document["approvals"] = [a for a in document["approvals"] if a["key"] != council]
    report = verify_approvals(parse_policy(document))
    assert set(report.missing) == {"childrens_services", "housing"}


def test_an_approval_signs_a_domain_separated_message_over_the_hash() -> None:
    policy = load_policy(EXAMPLE_POLICY)
    key = example_key("police-dpo")
    approval = make_approval(policy, key)
    assert approval["key"] == key.fingerprint == fingerprint(bytes.fromhex(approval["public_key"]))
    assert approval_message(policy.policy_hash) == (
        b"placelink-policy-approval/v1/" + policy.policy_hash.encode()
    )
    assert approval["dpo"] == "dpo@police.seabrook.example"


def _tampered(change: Any) -> dict[str, Any]:
    document = enrolled_document({})
    change(document)
    return document


def _stranger_signs(document: dict[str, Any]) -> None:
    stranger = SigningKey.generate()
    document["approvals"].append(make_approval(parse_policy(document), stranger))


def _swap_public_key(document: dict[str, Any]) -> None:
    document["approvals"][0]["public_key"] = SigningKey.generate().public_raw.hex()


def _flip_signature(document: dict[str, Any]) -> None:
    signature = document["approvals"][0]["signature"]
    document["approvals"][0]["signature"] = ("0" if signature[0] != "0" else "1") + signature[1:]


@pytest.mark.parametrize(
    ("change", "bad_reason", "missing"),
    [
        (lambda d: d.update(version="1.1"), None, REQUIRED),  # amended: every approval stale
        (lambda d: d.update(status="suspended"), None, REQUIRED),
        (lambda d: d["parties"][0].update(node_key="ed25519:" + "ab" * 32), None, REQUIRED),
        (_stranger_signs, "no party's dpo_key", []),
        (_swap_public_key, "fingerprint it claims", None),
        (_flip_signature, "does not verify", None),
        (lambda d: d.update(approvals=[]), None, REQUIRED),
    ],
)
def test_verification_checklist(change: Any, bad_reason: str | None, missing: Any) -> None:
    report = verify_approvals(parse_policy(_tampered(change)))
    assert not report.complete
    if bad_reason:
        assert any(bad_reason in reason for _, reason in report.bad)
    if missing is not None:
        assert list(report.missing) == missing


def test_no_required_party_is_never_approved() -> None:
    document = enrolled_document({})
    document["parties"] = [p for p in document["parties"] if p["role"] == "recipient"]
    assert not verify_approvals(parse_policy(document)).complete


# --- trust: fail closed ----------------------------------------------------------------------


@pytest.mark.parametrize("trusted", [frozenset(), frozenset({""})])
def test_an_empty_trust_list_refuses_every_policy(trusted: frozenset[str]) -> None:
    policy = load_policy(EXAMPLE_POLICY)
    if trusted == frozenset():
        with pytest.raises(ConfigError, match="no trusted DPO keys"):
            check_approved(policy, trust=PolicyTrust(trusted))
    else:
        with pytest.raises(PolicyError, match="not approved"):
            check_approved(policy, trust=PolicyTrust(trusted))


def test_a_trust_list_missing_one_required_dpo_refuses() -> None:
    keys = set(example_trust().trusted_dpo_keys) - {example_key("pcn-dpo").fingerprint}
    with pytest.raises(PolicyError, match="missing or invalid: health") as caught:
        check_approved(load_policy(EXAMPLE_POLICY), trust=PolicyTrust(frozenset(keys)))
    assert "placelink policy sign" in caught.value.fix


def test_the_unsafe_opt_out_is_explicit() -> None:
    document = enrolled_document({})
    document["approvals"] = []
    policy = parse_policy(document)
    with pytest.raises(ConfigError):
        check_approved(policy, trust=PolicyTrust())
    check_approved(policy, trust=PolicyTrust(allow_unsigned_policies_unsafe=True))


def _write(tmp_path: Path, document: dict[str, Any], name: str = "policy.yaml") -> Path:
    path = tmp_path / name
    dump_policy(document, path)
    return path


def _app(tmp_path: Path, policy_path: Path) -> Flask:
    trusted = sorted(example_trust().trusted_dpo_keys)
    schemas = [str(default_schema_path())]
    database = f"sqlite:///{tmp_path / 'db'}"
    return create_app(database, [str(policy_path)], schemas, trusted_dpo_keys=trusted, today=TODAY)


def _refusals() -> dict[str, tuple[Any, type[Exception], str]]:
    dpo = example_dpo_keys().values()
    return {
        "unsigned": (lambda d: d.update(approvals=[]), PolicyError, "not approved"),
        "wrongly signed": (_flip_signature, PolicyError, "not approved"),
        "signed by strangers": (
            lambda d: d.update(approvals=sign_document(d, [SigningKey.generate()])["approvals"]),
            PolicyError, "not approved",
        ),
        "expired": (lambda d: d.update(expires_on=TODAY - dt.timedelta(days=1)), PolicyError,
                    "not in force"),
        "suspended (signed)": (
            lambda d: d.update(**sign_document({**d, "status": "suspended"}, dpo)),
            PolicyError, "status 'suspended'",
        ),
    }  # fmt: skip


@pytest.mark.parametrize("case", sorted(_refusals()))
def test_the_service_refuses_at_load_time(tmp_path: Path, case: str) -> None:
    change, error, message = _refusals()[case]
    document = enrolled_document({}, today=TODAY)
    change(document)
    path = _write(tmp_path, document)
    with pytest.raises(error, match=message):
        load_trusted_policy(path, trust=example_trust(), today=TODAY)
    with pytest.raises(error, match=message):
        _app(tmp_path, path)


def test_the_service_loads_a_signed_policy_in_force(tmp_path: Path) -> None:
    path = _write(tmp_path, enrolled_document({}, today=TODAY))
    assert load_trusted_policy(path, trust=example_trust(), today=TODAY).status == "active"
    assert _app(tmp_path, path).test_client().get("/healthz").status_code == 200


@pytest.mark.parametrize("setting", [None, "", " , ,"])
def test_a_missing_or_empty_trust_setting_fails_closed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, setting: str | None
) -> None:
    """OPA once accepted unsigned bundles when a config field was missing: here a missing
    field means no policy loads at all."""
    path = _write(tmp_path, enrolled_document({}, today=dt.date.today()))
    monkeypatch.setenv("PLACELINK_DATABASE_URL", f"sqlite:///{tmp_path / 'db'}")
    monkeypatch.setenv("PLACELINK_POLICIES", str(path))
    monkeypatch.delenv("PLACELINK_ALLOW_UNSIGNED_POLICIES_UNSAFE", raising=False)
    if setting is None:
        monkeypatch.delenv("PLACELINK_TRUSTED_DPO_KEYS", raising=False)
    else:
        monkeypatch.setenv("PLACELINK_TRUSTED_DPO_KEYS", setting)
    with pytest.raises(ConfigError, match="no trusted DPO keys"):
        app_from_environment()
    with pytest.raises(ConfigError, match="no trusted DPO keys"):
        create_app(f"sqlite:///{tmp_path / 'db'}", [str(path)], [])
    monkeypatch.setenv("PLACELINK_ALLOW_UNSIGNED_POLICIES_UNSAFE", "1")
    assert app_from_environment().test_client().get("/healthz").status_code == 200
    monkeypatch.setenv("PLACELINK_ALLOW_UNSIGNED_POLICIES_UNSAFE", "yes")  # only "1" opts out
    with pytest.raises(ConfigError):
        app_from_environment()


# --- signing a file, key files ----------------------------------------------------------------


def test_signing_rewrites_only_the_approvals_block(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    original = EXAMPLE_POLICY.read_text(encoding="utf-8")
    located = load_located(EXAMPLE_POLICY)
    path.write_text(original.replace(render_approvals(located.value["approvals"]),
                                     "approvals: []\n"), encoding="utf-8")  # fmt: skip
    assert not verify_approvals(load_policy(path)).complete
    for key in example_dpo_keys().values():
        sign_policy_file(path, key)
    assert path.read_text(encoding="utf-8") == original  # comments, layout, order kept
    sign_policy_file(path, example_key("police-dpo"))  # signing twice replaces, never duplicates
    assert path.read_text(encoding="utf-8") == original


def test_only_a_named_dpo_key_can_sign(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(EXAMPLE_POLICY.read_text(encoding="utf-8"), encoding="utf-8")
    with pytest.raises(PolicyError, match="no party's dpo_key"):
        sign_policy_file(path, SigningKey.generate())


def test_key_files_are_encrypted_0600_and_round_trip(tmp_path: Path) -> None:
    key, path = SigningKey.generate(), tmp_path / "dpo.key"
    save_signing_key(path, key, passphrase="a long passphrase")
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert path.read_bytes().startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
    assert key.public_raw.hex() not in path.read_text()
    loaded = load_signing_key(path, passphrase="a long passphrase")
    assert loaded.fingerprint == key.fingerprint


@pytest.mark.parametrize(
    ("save", "load", "message"),
    [
        ({"passphrase": "a long passphrase"}, {"passphrase": "another phrase"}, "wrong passphrase"),
        ({"passphrase": "a long passphrase"}, {"passphrase": None}, "no passphrase"),
        ({"passphrase": None, "unencrypted_unsafe": True}, {"passphrase": None}, "not encrypted"),
        ({"passphrase": None}, None, "no passphrase to encrypt"),
        ({"passphrase": "short"}, None, "shorter than 12"),
    ],
)  # fmt: skip
def test_key_file_failures_are_one_opaque_error(
    tmp_path: Path, save: dict[str, Any], load: dict[str, Any] | None, message: str
) -> None:
    path = tmp_path / "dpo.key"
    with pytest.raises(KeyMaterialError, match=message) as caught:
        save_signing_key(path, SigningKey.generate(), **save)
        assert load is not None
        load_signing_key(path, **load)
    assert "a long passphrase" not in str(caught.value)
    assert "another phrase" not in str(caught.value)


def test_an_unencrypted_key_loads_only_when_asked(tmp_path: Path) -> None:
    key, path = SigningKey.generate(), tmp_path / "dpo.key"
    save_signing_key(path, key, passphrase=None, unencrypted_unsafe=True)
    assert load_signing_key(path, passphrase=None, unencrypted_unsafe=True).fingerprint == (
        key.fingerprint
    )
    (tmp_path / "junk.key").write_text("not a key")
    with pytest.raises(KeyMaterialError, match="damaged or not a key"):
        load_signing_key(tmp_path / "junk.key", passphrase=None, unencrypted_unsafe=True)


def test_the_copy_helper_does_not_alias() -> None:
    document = enrolled_document({})
    assert copy.deepcopy(document) == document
