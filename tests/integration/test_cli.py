"""The offline commands as a script would use them: `placelink encode` and `placelink match`,
through the real console entry point, with exit codes 0 ok, 1 failure, 2 usage."""

from __future__ import annotations

import csv
import json
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
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("cli")
    town = generate_town(seed=5, people=300)
    for agency in ("police", "health"):
        write_canonical_csv(town.canonical_rows[agency], work / f"{agency}.csv")
    (work / "K").write_bytes(os.urandom(32))
    with (work / "truth.csv").open("w", encoding="utf-8", newline="") as handle:
        csv.writer(handle).writerows(town.truth)
    return work


def _csv_rows(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def _encode(work: Path, agency: str) -> subprocess.CompletedProcess[str]:
    return placelink("encode", "--secret-file", "K", "--input", f"{agency}.csv",
                     "--output", f"{agency}.clks", cwd=work)  # fmt: skip


def test_encode_writes_clks_and_local_id_map(workdir: Path) -> None:
    for agency in ("police", "health"):
        result = _encode(workdir, agency)
        assert result.returncode == 0, result.stderr
        assert "valid" in result.stderr and f"{agency}.clks" in result.stdout
        assert (workdir / f"{agency}.clks.ids").exists()
    blob = (workdir / "police.clks").read_bytes()
    with (workdir / "police.csv").open(encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            assert row["record_id"].encode() not in blob


def test_match_writes_one_row_per_record_with_stable_entities(workdir: Path) -> None:
    for agency in ("police", "health"):
        assert _encode(workdir, agency).returncode == 0
    runs = []
    for name in ("links1.csv", "links2.csv"):
        result = placelink("match", "police.clks", "health.clks", "--output", name, cwd=workdir)
        assert result.returncode == 0, result.stderr
        with (workdir / name).open(encoding="utf-8") as handle:
            runs.append(list(csv.DictReader(handle)))
    rows = runs[0]
    assert list(rows[0]) == ["source", "record_id", "entity_id"]
    counts = {a: len(_csv_rows(workdir / f"{a}.csv")) for a in ("police", "health")}
    assert len(rows) == sum(counts.values())
    with (workdir / "truth.csv").open(encoding="utf-8") as handle:
        truth = {(a, r): p for a, r, p in csv.reader(handle)}
    assert all((row["source"], row["record_id"]) in truth for row in rows)
    assert runs[0] == runs[1], "entity ids must be stable across runs on unchanged evidence"
    linked = {row["entity_id"] for row in rows}
    assert len(linked) < len(rows), "police and health share people; some must link"


def test_match_refuses_two_inputs_with_one_stem(workdir: Path) -> None:
    assert _encode(workdir, "police").returncode == 0
    (workdir / "other").mkdir(exist_ok=True)
    (workdir / "other" / "police.clks").write_bytes((workdir / "police.clks").read_bytes())
    result = placelink(
        "match", "police.clks", "other/police.clks", "--output", "x.csv", cwd=workdir
    )
    assert result.returncode == 1 and "stem" in result.stderr and "fix:" in result.stderr


def test_encode_with_a_short_secret_fails_with_a_fix(workdir: Path) -> None:
    (workdir / "short").write_bytes(b"0123456789")
    result = placelink("encode", "--secret-file", "short", "--input", "police.csv",
                       "--output", "p.clks", cwd=workdir)  # fmt: skip
    assert result.returncode == 1
    assert "32 bytes" in result.stderr and "fix:" in result.stderr
    assert "0123456789" not in result.stderr


def test_usage_errors_exit_2(workdir: Path) -> None:
    assert placelink("encode", "--input", "police.csv", cwd=workdir).returncode == 2
    assert placelink("no-such-command", cwd=workdir).returncode == 2


def test_keys_secret_new_writes_a_private_key_file(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PLACELINK_SECRET_PASSPHRASE", raising=False)
    refused = placelink("keys", "secret", "new", "--output", "new.secret", cwd=workdir)
    assert refused.returncode == 1 and "no passphrase" in refused.stderr
    monkeypatch.setenv("PLACELINK_SECRET_PASSPHRASE", "a passphrase for the test")
    result = placelink("keys", "secret", "new", "--output", "new.secret", cwd=workdir)
    assert result.returncode == 0, result.stderr
    assert (workdir / "new.secret").stat().st_mode & 0o777 == 0o600
    again = placelink("keys", "secret", "new", "--output", "new.secret", cwd=workdir)
    assert again.returncode == 1


def test_gateway_check_reports_per_field_validity_and_encodes_nothing(workdir: Path) -> None:
    before = sorted(p.name for p in workdir.iterdir())
    result = placelink("gateway", "check", "--input", "police.csv", cwd=workdir)
    assert result.returncode == 0, result.stderr
    assert "validity" in result.stdout and "postcode" in result.stdout
    as_json = placelink("gateway", "check", "--input", "police.csv", "--json", cwd=workdir)
    report = json.loads(as_json.stdout)
    assert report["records"] == len(_csv_rows(workdir / "police.csv"))
    assert set(report["fields"]["postcode"]) >= {"valid", "invalid", "unverified", "validity"}
    assert sorted(p.name for p in workdir.iterdir()) == before
    missing = placelink("gateway", "check", "--input", "absent.csv", cwd=workdir)
    assert missing.returncode == 1 and "fix:" in missing.stderr


@pytest.mark.parametrize(("setting", "advised"), [(None, False), ("1", True)])
def test_the_command_turns_numpys_huge_page_advice_off_unless_told(
    setting: str | None, advised: bool
) -> None:
    """Importing the command sets NUMPY_MADVISE_HUGEPAGE=0 before anything imports numpy
    (the reason is in placelink/cli.py); an operator's own setting wins."""
    probe = (
        "import sys, placelink.cli\n"
        "assert 'numpy' not in sys.modules, 'a command module imports numpy at import'\n"
        "import numpy\n"
        "print(numpy._core.multiarray._get_madvise_hugepage())\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "NUMPY_MADVISE_HUGEPAGE"}
    if setting is not None:
        env["NUMPY_MADVISE_HUGEPAGE"] = setting
    result = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True,
                            text=True, timeout=60, check=True)  # fmt: skip
    assert result.stdout.strip() == str(advised)


def test_encode_shares_a_large_batch_between_two_processes_by_default(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Without --workers, two processes where this one may use two CPUs or more (a
    container's CPU set, not the host's count), else one; --workers still decides."""
    from placelink.cli import build_parser
    from placelink.commands import offline

    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3}, raising=False)
    assert offline.default_workers() == 2
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {3}, raising=False)
    assert offline.default_workers() == 1
    base = ["encode", "--secret-file", "s", "--input", "i.csv", "--output", "o.clks"]
    assert build_parser().parse_args(base).workers is None  # then default_workers()
    assert build_parser().parse_args([*base, "--workers", "1"]).workers == 1
