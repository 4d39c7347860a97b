"""Lint: every finding has a broken example that triggers it and nothing else; the shipped
example is clean; findings carry file, line and fix; every problem is reported at once."""

from __future__ import annotations

import copy
import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from keys.errors import PlacelinkError, PolicyError
from placelink.cli import main
from policies.findings import CODES
from policies.lint import lint_file, lint_located
from policies.located import LocatedDocument, parse_located
from policies.model import load_policy, parse_policy
from tests.policy_broken import BROKEN, EXAMPLES, TODAY, broken_text
from tests.policy_keys import EXAMPLE_POLICY


def test_every_finding_code_has_one_broken_example() -> None:
    assert set(EXAMPLES) == set(CODES)
    assert {p.stem for p in BROKEN.glob("*.yaml")} == set(CODES)


@pytest.mark.parametrize("code", sorted(CODES))
def test_each_broken_example_triggers_its_finding_and_nothing_else(code: str) -> None:
    path = BROKEN / f"{code}.yaml"
    findings = lint_file(path, today=TODAY)
    assert [f.code for f in findings] == [code]
    finding = findings[0]
    assert finding.where == str(path) and finding.fix
    text = path.read_text(encoding="utf-8").splitlines()
    assert 1 <= finding.line <= len(text)
    assert f"`{code}`" in text[0]


@pytest.mark.parametrize("code", sorted(CODES))
def test_the_committed_broken_examples_are_what_the_generator_makes(code: str) -> None:
    example = EXAMPLE_POLICY.read_text(encoding="utf-8")
    committed = (BROKEN / f"{code}.yaml").read_text(encoding="utf-8")
    assert committed == broken_text(code, example), "run `python -m tests.policy_broken`"


def test_the_shipped_example_is_clean() -> None:
    assert lint_file(EXAMPLE_POLICY, today=TODAY) == []
    assert lint_file(EXAMPLE_POLICY, today=dt.date(2026, 1, 1)) == []


def test_the_example_expires_and_its_review_falls_due() -> None:
    codes = [f.code for f in lint_file(EXAMPLE_POLICY, today=dt.date(2028, 1, 1))]
    assert codes == ["expired", "review-overdue"]


def test_lines_point_at_the_offending_text() -> None:
    path = BROKEN / "invalid-value.yaml"
    (finding,) = lint_file(path, today=TODAY)
    line = path.read_text(encoding="utf-8").splitlines()[finding.line - 1]
    assert "transform: send" in line
    assert finding.path == "data_items[0].transform"
    assert finding.format().startswith(f"{path}:{finding.line}: [invalid-value]")


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    text = EXAMPLE_POLICY.read_text(encoding="utf-8")
    text = text.replace("status: active", "status: live").replace("min_cell: 8", "min_cell: 3")
    text = text.replace("{id: P2,", "{id: P1,").replace("dpia:\n", "notes: x\ndpia:\n")
    text = text.replace("title: Seabrook", "title: Seabrook\ntitle: again")
    path = tmp_path / "many.yaml"
    path.write_text(text, encoding="utf-8")
    codes = sorted(f.code for f in lint_file(path, today=TODAY))
    assert codes == sorted(
        ["invalid-value", "disclosure-floor", "duplicate-id", "unknown-key", "duplicate-key"]
    )
    with pytest.raises(PolicyError) as caught:
        load_policy(path)
    assert "5 problems" in caught.value.message
    for code in codes:
        assert f"[{code}]" in caught.value.message
    assert "line " in caught.value.message


def test_a_missing_file_and_a_non_mapping_are_findings_not_crashes(tmp_path: Path) -> None:
    (missing,) = lint_file(tmp_path / "absent.yaml", today=TODAY)
    assert missing.code == "yaml-syntax" and "cannot read" in missing.message
    listing = tmp_path / "list.yaml"
    listing.write_text("- a\n- b\n", encoding="utf-8")
    assert [f.code for f in lint_file(listing, today=TODAY)] == ["invalid-value"]


def test_located_yaml_keeps_lines_and_reports_duplicates() -> None:
    located = parse_located("a: 1\nb:\n  - x\n  - {c: 2}\na: 3\n", where="t.yaml")
    assert located.value == {"a": 3, "b": ["x", {"c": 2}]}
    assert located.line(("b", 1, "c")) == 4
    assert located.line(("b", 7)) == 2  # falls back to the nearest ancestor
    assert located.duplicates == [("a",)]


def test_a_yaml_syntax_error_names_its_line() -> None:
    with pytest.raises(PolicyError, match="line 3: not valid YAML"):
        parse_located("a: 1\nb: [\n", where="t.yaml")


def test_lint_command_exit_codes_and_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["policy", "lint", str(EXAMPLE_POLICY), "--today", TODAY.isoformat()]) == 0
    broken = str(BROKEN / "no-dpia.yaml")
    assert main(["policy", "lint", broken, "--today", TODAY.isoformat()]) == 1
    assert "[no-dpia]" in capsys.readouterr().out
    assert main(["policy", "lint", broken, "--json", "--today", TODAY.isoformat()]) == 1
    (finding,) = json.loads(capsys.readouterr().out)
    assert finding["code"] == "no-dpia" and finding["line"] > 1
    two = [broken, str(BROKEN / "no-tests.yaml"), str(EXAMPLE_POLICY)]
    assert main(["policy", "lint", *two, "--json", "--today", TODAY.isoformat()]) == 1
    assert [f["code"] for f in json.loads(capsys.readouterr().out)] == ["no-dpia", "no-tests"]


def _paths(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [path]
    if isinstance(value, dict):
        for key, item in value.items():
            found += _paths(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += _paths(item, (*path, index))
    return found


EXAMPLE_DOCUMENT = yaml.safe_load(EXAMPLE_POLICY.read_text(encoding="utf-8"))
ODD_VALUES = st.sampled_from(
    [None, "", "x", 0, -1, 3.5, True, [], {}, ["a"], {"a": 1}, [{"id": 1}],
     dt.date(2020, 1, 1), "all", [None], {"id": None}]
)  # fmt: skip


@settings(max_examples=150, deadline=None)
@given(
    changes=st.lists(
        st.tuples(st.sampled_from(_paths(EXAMPLE_DOCUMENT)[1:]), ODD_VALUES), min_size=1, max_size=3
    )
)
def test_lint_and_load_never_crash_on_a_damaged_policy(changes: list[tuple[Any, Any]]) -> None:
    document = copy.deepcopy(EXAMPLE_DOCUMENT)
    for path, value in changes:
        target = document
        try:
            for key in path[:-1]:
                target = target[key]
            target[path[-1]] = copy.deepcopy(value)
        except (KeyError, IndexError, TypeError):
            continue
    findings = lint_located(LocatedDocument(document, "damaged.yaml"), today=TODAY)
    assert all(f.code in CODES and f.fix for f in findings)
    try:
        parse_policy(document)
    except PlacelinkError:
        assert findings


def test_alias_bombs_are_refused(tmp_path: Path) -> None:
    levels = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    levels += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 8)]
    path = tmp_path / "bomb.yaml"
    path.write_text("\n".join(levels) + "\n", encoding="utf-8")
    (finding,) = lint_file(path, today=TODAY)
    assert finding.code == "yaml-syntax" and "aliases" in finding.message
