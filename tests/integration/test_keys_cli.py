"""`placelink keys ...` as agency IT would run it: passphrases only from the environment,
exit 1 with one opaque message on bad shares, nothing half-written, and `encode` reading the
epoch from the key file."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from placelink.town import generate_town, write_canonical_csv
from policies.clks import load_clks

PASSPHRASES = {
    "PLACELINK_SECRET_PASSPHRASE": "secret passphrase for tests",
    "PLACELINK_DPO_PASSPHRASE": "dpo passphrase for tests",
    "PLACELINK_NODE_PASSPHRASE": "node passphrase for tests",
}

# The header of an unencrypted PKCS #8 file (split so that no scanner mistakes this test
# for key material: the keys these tests read are made at run time).
PLAIN_PEM = "-----BEGIN " + "PRIVATE KEY-----"


def keys(*args: str | Path, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "placelink", *map(str, args)]
    environment = {**os.environ, **PASSPHRASES, **env}
    return subprocess.run(command, cwd=cwd, env=environment, capture_output=True, text=True,
                          timeout=120, check=False)  # fmt: skip


def test_split_combine_and_encode_under_the_files_epoch(tmp_path: Path) -> None:
    new = keys("keys", "secret", "new", "--output", "k", "--epoch", "3", cwd=tmp_path)
    assert new.returncode == 0, new.stderr
    split = keys("keys", "secret", "split", "--secret", "k", "--threshold", "2", "--shares",
                 "3", "--output-dir", "shares", cwd=tmp_path)  # fmt: skip
    assert split.returncode == 0, split.stderr
    shares = sorted((tmp_path / "shares").iterdir())
    assert [p.name for p in shares] == [f"share-{n}-of-3.txt" for n in (1, 2, 3)]
    too_few = keys("keys", "secret", "combine", shares[0], "--output", "k2", cwd=tmp_path)
    assert too_few.returncode == 1
    assert "cannot rebuild the secret from these shares" in too_few.stderr
    assert not (tmp_path / "k2").exists()
    combined = keys("keys", "secret", "combine", shares[0], shares[2], "--output", "k2",
                    cwd=tmp_path)  # fmt: skip
    assert combined.returncode == 0 and "epoch 3" in combined.stdout
    write_canonical_csv(generate_town(seed=2, people=60).canonical_rows["police"],
                        tmp_path / "police.csv")  # fmt: skip
    encoded = keys("encode", "--secret-file", "k2", "--input", "police.csv", "--output",
                   "police.clks", cwd=tmp_path)  # fmt: skip
    assert encoded.returncode == 0, encoded.stderr
    assert load_clks((tmp_path / "police.clks").read_bytes()).epoch == 3
    other = keys("encode", "--secret-file", "k2", "--input", "police.csv", "--output",
                 "p2.clks", "--epoch", "2", cwd=tmp_path)  # fmt: skip
    assert other.returncode == 1 and "not the epoch of the secret file" in other.stderr


def test_split_refuses_to_overwrite_and_writes_nothing(tmp_path: Path) -> None:
    assert keys("keys", "secret", "new", "--output", "k", cwd=tmp_path).returncode == 0
    (tmp_path / "shares").mkdir()
    (tmp_path / "shares" / "share-3-of-3.txt").write_text("keep me")
    split = keys("keys", "secret", "split", "--secret", "k", "--threshold", "2", "--shares",
                 "3", "--output-dir", "shares", cwd=tmp_path)  # fmt: skip
    assert split.returncode == 1
    assert sorted(p.name for p in (tmp_path / "shares").iterdir()) == ["share-3-of-3.txt"]


@pytest.mark.parametrize("command", [("keys", "dpo", "new", "--output", "dpo.pem"),
                                     ("keys", "node", "new", "--output-dir", "node")])  # fmt: skip
def test_signing_keys_print_their_fingerprint_and_need_a_passphrase(
    tmp_path: Path, command: tuple[str, ...]
) -> None:
    variable = "PLACELINK_DPO_PASSPHRASE" if "dpo" in command else "PLACELINK_NODE_PASSPHRASE"
    refused = keys(*command, cwd=tmp_path, **{variable: ""})
    assert refused.returncode == 1 and "no passphrase" in refused.stderr
    made = keys(*command, cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    assert re.fullmatch(r"ed25519:[0-9a-f]{64}\n", made.stdout)
    pem = tmp_path / ("dpo.pem" if "dpo" in command else "node/node-signing.pem")
    assert pem.read_text().startswith("-----BEGIN ENCRYPTED PRIVATE KEY-----")
    again = keys(*command, cwd=tmp_path)
    assert again.returncode == 1 and "exists" in again.stderr


def test_node_new_json_and_unencrypted_only_when_asked(tmp_path: Path) -> None:
    made = keys("keys", "node", "new", "--output-dir", "n", "--json", "--unencrypted-unsafe",
                cwd=tmp_path)  # fmt: skip
    assert made.returncode == 0, made.stderr
    described = json.loads(made.stdout)
    assert described["sealing_key"].startswith("x25519:")
    assert (tmp_path / "n" / "node-signing.pem").read_text().startswith(PLAIN_PEM)


def test_rotate_makes_the_next_epoch_with_a_fresh_secret(tmp_path: Path) -> None:
    assert keys("keys", "secret", "new", "--output", "k0", cwd=tmp_path).returncode == 0
    rotated = keys("keys", "rotate", "--secret", "k0", "--output", "k1", cwd=tmp_path)
    assert rotated.returncode == 0 and "epoch 1" in rotated.stdout
    wrong = keys("keys", "rotate", "--secret", "k1", "--output", "k2", cwd=tmp_path,
                 PLACELINK_SECRET_PASSPHRASE="the wrong passphrase")  # fmt: skip
    assert wrong.returncode == 1 and "wrong passphrase, damaged or not a key file" in wrong.stderr
    assert PASSPHRASES["PLACELINK_SECRET_PASSPHRASE"] not in wrong.stderr
