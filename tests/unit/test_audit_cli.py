"""`placelink audit` from the command line: key events recorded by `placelink keys ...
--audit-log`, a checkpoint signed by the node key, verify's exit codes and messages."""

from __future__ import annotations

from pathlib import Path

import pytest

from placelink.cli import main


def run(capsys: pytest.CaptureFixture[str], *args: str | Path) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_key_events_a_checkpoint_and_verify(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log, unsafe = tmp_path / "audit.jsonl", "--unencrypted-unsafe"
    run(capsys, "keys", "secret", "new", "--output", tmp_path / "s.key", unsafe, "--audit-log", log)
    run(
        capsys,
        "keys",
        "secret",
        "split",
        "--secret",
        tmp_path / "s.key",
        "--threshold",
        "2",
        "--shares",
        "3",
        "--output-dir",
        tmp_path / "shares",
        "--audit-log",
        log,
    )
    code, node_key, _ = run(
        capsys, "keys", "node", "new", "--output-dir", tmp_path / "node", unsafe, "--audit-log", log
    )
    node_key = node_key.strip()
    assert code == 0 and len(log.read_text().splitlines()) == 3
    code, out, _ = run(
        capsys,
        "audit",
        "checkpoint",
        "--log",
        log,
        "--node-key",
        tmp_path / "node" / "node-signing.pem",
        unsafe,
    )
    assert code == 0 and '"seq": 2' in out
    code, out, err = run(capsys, "audit", "verify", "--log", log, "--key", node_key)
    assert (code, err) == (0, "") and out.startswith("OK: 4 entries, 1 checkpoints")
    report = ("audit", "report", "--log", log, "--key", node_key, "--since", "2000-01-01")
    code, out, _ = run(capsys, *report)
    assert code == 0 and "secret_split" in out and "threshold 2" in out and "node_new" in out

    lines = log.read_text().splitlines()
    log.write_text("\n".join([lines[0], lines[2], lines[3]]) + "\n")  # the split is dropped
    code, out, _ = run(capsys, "audit", "verify", "--log", log, "--key", node_key, "--json")
    assert code == 1 and '"problem": "dropped"' in out and '"seq": 1' in out
    code, _, err = run(capsys, "audit", "verify", "--log", log, "--key", "ed25519:00")
    assert code == 1 and "neither a fingerprint" in err


def test_the_report_verifies_every_log_first(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A log that does not verify is not reported on: exit 1, nothing on stdout, and the
    TAMPERED line ``audit verify`` prints, on stderr."""
    log, unsafe = tmp_path / "audit.jsonl", "--unencrypted-unsafe"
    run(capsys, "keys", "secret", "new", "--output", tmp_path / "s.key", unsafe, "--audit-log", log)
    _, node_key, _ = run(capsys, "keys", "node", "new", "--output-dir", tmp_path / "node", unsafe,
                         "--audit-log", log)  # fmt: skip
    node_key, pem = node_key.strip(), tmp_path / "node" / "node-signing.pem"
    run(capsys, "audit", "checkpoint", "--log", log, "--node-key", pem, unsafe)
    report = ["audit", "report", "--log", log, "--key", node_key, "--since", "2000-01-01"]
    assert run(capsys, *report)[0] == 0
    stranger = "ed25519:" + "ab" * 32  # the checkpoint's signer is not trusted
    code, out, err = run(capsys, *report[:5], stranger, *report[6:])
    assert (code, out) == (1, "") and "bad-checkpoint" in err and "--key" in err

    log.write_text(log.read_text().replace('"node_new"', '"node_old"'))  # an entry edited
    code, verified, _ = run(capsys, "audit", "verify", "--log", log, "--key", node_key)
    assert code == 1 and verified.startswith("TAMPERED: first bad entry seq 1 (line 2): edited")
    code, out, err = run(capsys, *report)
    assert (code, out) == (1, "")
    assert verified.strip() in err and "nothing is reported" in err
