"""`placelink match --explain A B --report DIR` through the real console entry point."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest

from placelink.town import generate_town, write_canonical_csv


def placelink(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "placelink", *map(str, args)]
    return subprocess.run(
        command, cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )


@pytest.fixture(scope="module")
def encoded(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[tuple[str, str, str]]]:
    work = tmp_path_factory.mktemp("match-report")
    town = generate_town(seed=8, people=300)
    (work / "K").write_bytes(os.urandom(32))
    for agency in ("police", "health"):
        write_canonical_csv(town.canonical_rows[agency], work / f"{agency}.csv")
        done = placelink("encode", "--secret-file", "K", "--input", f"{agency}.csv",
                         "--output", f"{agency}.clks", cwd=work)  # fmt: skip
        assert done.returncode == 0, done.stderr
    return work, list(town.truth)


def _same_person(truth: list[tuple[str, str, str]]) -> tuple[str, str]:
    police = {person: record for agency, record, person in truth if agency == "police"}
    for agency, record, person in truth:
        if agency == "health" and person in police:
            return f"police:{police[person]}", f"health:{record}"
    raise AssertionError("the town should have someone known to police and health")


def test_match_explains_a_pair_and_writes_a_self_contained_report(
    encoded: tuple[Path, list[tuple[str, str, str]]],
) -> None:
    work, truth = encoded
    left, right = _same_person(truth)
    done = placelink("match", "police.clks", "health.clks", "--output", "links.csv",
                     "--explain", left, right, "--report", "report", cwd=work)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert f"{left}  vs  {right}" in done.stdout
    for field in ("given_name", "family_name", "date_of_birth", "address", "total weight"):
        assert field in done.stdout
    assert "proposed by blocking: yes" in done.stdout
    assert "cluster sizes" in done.stderr and "reduction ratio" in done.stderr
    page = (work / "report" / "report.html").read_text(encoding="utf-8")
    svg = (work / "report" / "weights.svg").read_text(encoding="utf-8")
    assert (
        "threshold" in svg
        and "<rect" in svg
        and "http://" not in page.replace("http://www.w3.org/2000/svg", "")
    )
    with (work / "links.csv").open(encoding="utf-8") as handle:
        links = {(r["source"], r["record_id"]): r["entity_id"] for r in csv.DictReader(handle)}
    assert len(links) > 100


def test_explaining_an_unknown_record_is_an_error_naming_the_fix(
    encoded: tuple[Path, list[tuple[str, str, str]]],
) -> None:
    work, _ = encoded
    done = placelink("match", "police.clks", "health.clks", "--output", "links.csv",
                     "--explain", "police:no-such-record", "health:x", cwd=work)  # fmt: skip
    assert done.returncode == 1
    assert "fix:" in done.stderr and "no-such-record" not in done.stderr
