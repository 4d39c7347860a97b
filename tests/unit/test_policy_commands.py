"""`placelink policy ...` and `placelink keys dpo new` through the real entry point, on the
examples: explain (md, html, one request), diff, sign, verify, test; and the services'
decisions on queries outside the policy."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest

from linkage.service import LinkageService
from placelink.cli import main
from policies.approval_file import render_approvals, sign_policy_file
from policies.diff import diff_policies
from policies.explain import explain_policy, period_words
from policies.explain_render import to_html, to_markdown
from policies.model import load_policy
from policies.rules import MemoryDecisionLog
from tests.policy_broken import BROKEN, TODAY
from tests.policy_keys import EXAMPLE_POLICY, example_dpo_keys

PASSPHRASE = "correct horse battery staple"

# The header of an unencrypted PKCS #8 file (split so that no scanner mistakes this test
# for key material: the keys these tests read are made at run time).
PLAIN_PEM = "-----BEGIN " + "PRIVATE KEY-----"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_explain_markdown_answers_the_dpo_questions(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "policy", "explain", str(EXAMPLE_POLICY), "--today", "2026-11-01")
    assert code == 0
    for heading in ("Who shares with whom", "Why, and on which lawful basis",
                    "What is shared, and in which form", "What is allowed, forbidden and required",
                    "Safeguards, and how long data is kept", "Golden tests"):  # fmt: skip
        assert f"## {heading}" in out
    assert "Seabrook Primary Care Network" in out and "6(1)(e) public task" in out
    assert "generalised to postcode sector" in out and "never shared" in out
    assert "| encodings | 13 months |" in out and "the prohibition wins" in out
    assert load_policy(EXAMPLE_POLICY).policy_hash in out


def test_explain_html_is_one_self_contained_page(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    page = tmp_path / "agreement.html"
    args = ("policy", "explain", str(EXAMPLE_POLICY), "--format", "html", "--output", str(page))
    assert run(capsys, *args)[0] == 0
    html = page.read_text(encoding="utf-8")
    assert html.startswith("<!DOCTYPE html>") and "<style>" in html
    assert not re.search(r"<(script|link|img|iframe)\b", html)
    assert not re.search(r"(src|href)=|url\(|@import|https?://", html)
    assert html.count("<table>") == 5 and "<h2>Who shares with whom</h2>" in html
    assert 'class="ok">approved</td>' in html


def test_html_escapes_policy_text() -> None:
    policy = load_policy(EXAMPLE_POLICY)
    sections = explain_policy(policy, today=TODAY)
    sections[0].paragraphs.append("<script>alert(1)</script> & co")
    html = to_html(sections)
    assert "<script>" not in html and "&lt;script&gt;" in html and "&amp; co" in html
    assert "\\<" not in to_markdown(sections)


@pytest.mark.parametrize(
    ("request_args", "verdict", "rule"),
    [
        (["action=upload", "party=police", "data_item=nhs_number"], "ALLOW", "P1"),
        (["action=view_hotspots", "party=task_force", "by=area"], "ALLOW", "P4"),
        (["action=view_records", "party=task_force"], "DENY", "X1"),
        (["action=upload", "party=health", "data_item=ethnicity"], "DENY", None),
    ],
)
def test_explain_one_request(
    capsys: pytest.CaptureFixture[str], request_args: list[str], verdict: str, rule: str | None
) -> None:
    code, out, _ = run(capsys, "policy", "explain", str(EXAMPLE_POLICY), "--request", *request_args)
    assert code == 0 and out.startswith(f"{verdict}: ")
    if rule:
        assert f"\n  {rule} (" in out
    code, out, _ = run(capsys, "policy", "explain", str(EXAMPLE_POLICY), "--json",
                       "--request", *request_args)  # fmt: skip
    decision = json.loads(out)
    assert decision["allowed"] == (verdict == "ALLOW")
    assert decision["rules"] == ([rule] if rule else [])
    assert decision["policy_hash"] == load_policy(EXAMPLE_POLICY).policy_hash


@pytest.mark.parametrize("bad", [["party=police"], ["action=upload", "party"], ["colour=red"]])
def test_a_malformed_request_is_a_clear_error(
    capsys: pytest.CaptureFixture[str], bad: list[str]
) -> None:
    code, _, err = run(capsys, "policy", "explain", str(EXAMPLE_POLICY), "--request", *bad)
    assert code == 1 and "fix:" in err


def test_diff_reports_what_is_newly_allowed_and_forbidden(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    text = EXAMPLE_POLICY.read_text(encoding="utf-8")
    amended = text.replace('version: "1.0"', 'version: "1.1"')
    amended = amended.replace(
        "constraints: {by: [area]}}", "constraints: {by: [area, event_month]}}"
    )
    amended = amended.replace(
        "  - {id: P2, action: link, assignee: linkage_service, purpose: hotspots}\n", ""
    )
    new = tmp_path / "amended.yaml"
    new.write_text(amended, encoding="utf-8")
    code, out, _ = run(capsys, "policy", "diff", str(EXAMPLE_POLICY), str(new))
    assert code == 0
    assert "AMENDMENT" in out
    assert "+ task_force view_hotspots by event_month (by P4)" in out
    assert "- linkage link (no permission covers it" in out
    assert "* permissions: removed P2" in out and "* version: '1.0' -> '1.1'" in out


def test_diff_of_a_suspension_is_an_amendment_that_forbids_everything(tmp_path: Path) -> None:
    suspended = tmp_path / "suspended.yaml"
    text = EXAMPLE_POLICY.read_text(encoding="utf-8")
    suspended.write_text(text.replace("status: active", "status: suspended"), encoding="utf-8")
    result = diff_policies(load_policy(EXAMPLE_POLICY), load_policy(suspended))
    assert result.amendment and "status: active -> suspended" in result.changes
    assert result.newly_allowed == []  # the rules are the same; the loader refuses it whole


def test_diff_of_the_same_text_is_no_amendment(tmp_path: Path) -> None:
    text = EXAMPLE_POLICY.read_text(encoding="utf-8")
    located_approvals = render_approvals(load_policy(EXAMPLE_POLICY).document["approvals"])
    copy = tmp_path / "unsigned.yaml"
    copy.write_text("# a comment\n" + text.replace(located_approvals, "approvals: []\n"))
    result = diff_policies(load_policy(EXAMPLE_POLICY), load_policy(copy))
    assert not result.amendment and not result.newly_allowed and not result.newly_forbidden
    assert result.changes == []


def test_dpo_key_sign_verify_test_round_trip(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PLACELINK_DPO_PASSPHRASE", PASSPHRASE)
    key = tmp_path / "police-dpo.key"
    code, out, _ = run(capsys, "keys", "dpo", "new", "--output", str(key))
    fingerprint = out.strip()
    assert code == 0 and re.fullmatch(r"ed25519:[0-9a-f]{64}", fingerprint)
    assert PASSPHRASE not in key.read_text()
    text = EXAMPLE_POLICY.read_text(encoding="utf-8")
    police = example_dpo_keys()["police-dpo"].fingerprint
    policy = tmp_path / "policy.yaml"
    approvals = render_approvals(load_policy(EXAMPLE_POLICY).document["approvals"])
    text = text.replace(f"dpo_key: {police}", f"dpo_key: {fingerprint}")
    policy.write_text(text.replace(approvals, "approvals: []\n"))  # a new version: unsigned
    for other in example_dpo_keys().values():
        if other.fingerprint != police:
            sign_policy_file(policy, other)
    code, out, _ = run(capsys, "policy", "verify", str(policy))
    assert code == 1 and "police               NOT approved" in out and "NOT verified" in out
    code, out, _ = run(capsys, "policy", "sign", str(policy), "--key", str(key))
    assert code == 0 and fingerprint in out
    code, out, _ = run(capsys, "policy", "verify", str(policy))
    assert code == 0 and out.rstrip().endswith("\nverified")
    trusted = [
        "--trust",
        fingerprint,
        *[f"--trust={k.fingerprint}" for k in example_dpo_keys().values()],
    ]
    assert run(capsys, "policy", "verify", str(policy), *trusted)[0] == 0
    assert run(capsys, "policy", "verify", str(policy), "--trust", fingerprint)[0] == 1
    code, out, _ = run(capsys, "policy", "test", str(policy))
    assert code == 0 and "8 golden test(s), 0 failed" in out


def test_key_passphrase_never_comes_from_argv(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PLACELINK_DPO_PASSPHRASE", raising=False)
    key = tmp_path / "k.key"
    code, _, err = run(capsys, "keys", "dpo", "new", "--output", str(key))
    assert code == 1 and "PLACELINK_DPO_PASSPHRASE is not set" in err and not key.exists()
    assert run(capsys, "keys", "dpo", "new", "--output", str(key), "--unencrypted-unsafe")[0] == 0
    assert key.read_text().startswith(PLAIN_PEM)
    code, _, err = run(capsys, "policy", "sign", str(EXAMPLE_POLICY), "--key", str(key))
    assert code == 1 and "PLACELINK_DPO_PASSPHRASE" in err
    assert run(capsys, "keys", "dpo", "new", "--output", str(key), "--unencrypted-unsafe")[0] == 1


def test_policy_test_fails_on_a_failing_case_and_on_none(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, _ = run(capsys, "policy", "test", str(BROKEN / "failing-test.yaml"))
    assert code == 1 and "FAIL the task force sees hot-spots by area" in out
    code, out, _ = run(capsys, "policy", "test", str(BROKEN / "no-tests.yaml"))
    assert code == 1 and "(none ran)" in out


PERIODS = [
    ("P13M", "13 months"),
    ("P6Y", "6 years"),
    ("P1Y6M", "1 year, 6 months"),
    ("P90D", "90 days"),
]


@pytest.mark.parametrize(("period", "words"), PERIODS)
def test_periods_in_words(period: str, words: str) -> None:
    assert period_words(period) == words


def test_the_service_decides_and_records_queries(tmp_path: Path) -> None:
    from gateway.schema import default_schema
    from keys.errors import PolicyError
    from linkage.hotspots import DEFAULT_MEASURES

    log = MemoryDecisionLog()
    service = LinkageService.create(f"sqlite:///{tmp_path / 'db'}", [load_policy(EXAMPLE_POLICY)],
                                    [default_schema()])  # fmt: skip
    service.decisions = log
    with pytest.raises(
        PolicyError, match="does not allow 'recipient' to view_hotspots by 'event_month'"
    ):
        service.hotspots("seabrook-task-force", DEFAULT_MEASURES, by="event_month")
    service.hotspots("seabrook-task-force", DEFAULT_MEASURES, by="area")
    with pytest.raises(PolicyError, match="not a provider"):
        service.entity_links("seabrook-task-force", "task_force")
    service.entity_links("seabrook-task-force", "police")
    assert [(d.request.action, d.allowed, d.rules) for d in log.decisions] == [
        ("view_hotspots", False, ()),
        ("view_hotspots", True, ("P4",)),
        ("view_links", True, ("P5",)),
    ]
    assert {d.policy_hash for d in log.decisions} == {load_policy(EXAMPLE_POLICY).policy_hash}


def _dpo_guide_commands() -> list[str]:
    text = (EXAMPLE_POLICY.parents[2] / "docs" / "dpo.md").read_text(encoding="utf-8")
    block = text.split("```sh\n", 1)[1].split("```", 1)[0]
    return [line.split("  #")[0].strip() for line in block.splitlines() if line.strip()]


@pytest.mark.parametrize("command", _dpo_guide_commands())
def test_the_dpo_guide_examples_run(
    command: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    root = EXAMPLE_POLICY.parents[2]
    argv = shlex.split(command)
    assert argv[0] == "placelink"
    argv = [str(root / a) if a.startswith("policies/") else a for a in argv[1:]]
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 0, capsys.readouterr().err


def test_a_link_run_needs_a_link_permission(tmp_path: Path) -> None:
    import dataclasses

    from gateway.schema import default_schema
    from keys.errors import InputError, PolicyError

    policy = load_policy(EXAMPLE_POLICY)
    without_p2 = dataclasses.replace(policy, rules=tuple(r for r in policy.rules if r.id != "P2"))
    for candidate, error in ((policy, InputError), (without_p2, PolicyError)):
        service = LinkageService.create(f"sqlite:///{tmp_path / (candidate.version + str(error))}",
                                        [candidate], [default_schema()])  # fmt: skip
        with pytest.raises(error):  # with P2: no batches yet; without: refused by the rules
            service.run_linkage("seabrook-task-force")


GOLDEN = EXAMPLE_POLICY.parents[2] / "tests" / "golden" / "policy-explain-task-force.md"


def test_explain_output_matches_the_golden_file(capsys: pytest.CaptureFixture[str]) -> None:
    """A change of the DPO's summary must be deliberate: regenerate with
    `placelink policy explain policies/examples/task-force.yaml --today 2026-11-01 > FILE`."""
    assert main(["policy", "explain", str(EXAMPLE_POLICY), "--today", "2026-11-01"]) == 0
    assert capsys.readouterr().out == GOLDEN.read_text(encoding="utf-8")
