"""Key files at rest (keys.secret v2, keys.keyfiles, keys.sealing): encrypted under a passphrase
through scrypt, 0600, unencrypted only when asked; every wrong passphrase, damaged or tampered
file is one opaque KeyMaterialError that carries neither the key nor the passphrase."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from keys import (
    KeyMaterialError,
    LinkageSecret,
    NodeKeys,
    SigningKey,
    load_sealing_key,
    load_signing_key,
    new_secret,
    read_secret,
    rotated,
    save_node_keys,
    save_signing_key,
    write_secret,
)
from keys.epochs import epoch_for
from keys.secret import KEY_FILE_HEADER_V2, MIN_SCRYPT_N

PASSPHRASE = "correct horse battery staple"
FAST = {"scrypt_n": MIN_SCRYPT_N}  # the floor a file may name: keeps the tests quick


def _write(path: Path, secret: LinkageSecret) -> None:
    write_secret(secret, path, passphrase=PASSPHRASE, **FAST)


def _opaque_message(path: Path, passphrase: str) -> str:
    with pytest.raises(KeyMaterialError) as caught:
        read_secret(path, passphrase=passphrase)
    shown = str(caught.value) + repr(caught.value)
    assert PASSPHRASE not in shown and passphrase not in shown
    return caught.value.message


def test_encrypted_secret_round_trip_keeps_value_and_epoch(tmp_path: Path) -> None:
    path = tmp_path / "linkage.secret"
    secret = new_secret(epoch=4)
    _write(path, secret)
    text = path.read_text(encoding="ascii")
    assert text.startswith(KEY_FILE_HEADER_V2 + "\n")
    assert secret.value.hex() not in text
    assert path.stat().st_mode & 0o777 == 0o600
    opened = read_secret(path, passphrase=PASSPHRASE)
    assert (opened.value, opened.epoch) == (secret.value, 4)
    asked: list[bool] = []
    assert read_secret(path, passphrase=lambda: asked.append(True) or PASSPHRASE).epoch == 4
    assert asked == [True]


def test_a_raw_file_never_asks_for_a_passphrase(tmp_path: Path) -> None:
    path = tmp_path / "K"
    path.write_bytes(bytes(range(40)))
    assert read_secret(path, passphrase=lambda: pytest.fail("asked")).value == bytes(range(40))


@pytest.mark.parametrize(
    "field", ["ciphertext", "salt", "nonce", "epoch", "n", "kdf", "cipher", "r"]
)
def test_wrong_passphrase_and_every_tampered_field_give_one_opaque_error(
    tmp_path: Path, field: str
) -> None:
    path = tmp_path / "linkage.secret"
    _write(path, new_secret(epoch=1))
    expected = _opaque_message(path, "a wrong passphrase entirely")
    header, body = path.read_text(encoding="ascii").split("\n", 1)
    fields = json.loads(body)
    value = fields[field]
    if isinstance(value, int):
        fields[field] = value + (MIN_SCRYPT_N if field == "n" else 1)
    else:
        fields[field] = ("0" if value[0] != "0" else "1") + value[1:]
    path.write_text(header + "\n" + json.dumps(fields) + "\n", encoding="ascii")
    assert _opaque_message(path, PASSPHRASE) == expected


@settings(max_examples=25, deadline=None)
@given(cut=st.integers(min_value=len(KEY_FILE_HEADER_V2) + 1, max_value=400))
def test_a_truncated_key_file_gives_the_same_opaque_error(cut: int) -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "linkage.secret"
        _write(path, new_secret())
        data = path.read_bytes()
        path.write_bytes(data[: min(cut, len(data) - 2)])
        with pytest.raises(KeyMaterialError, match="wrong passphrase, damaged or not a key file"):
            read_secret(path, passphrase=PASSPHRASE)


def test_writing_without_a_passphrase_needs_the_unsafe_flag(tmp_path: Path) -> None:
    path = tmp_path / "linkage.secret"
    with pytest.raises(KeyMaterialError, match="no passphrase"):
        write_secret(new_secret(), path, passphrase=None)
    assert not path.exists()
    with pytest.raises(KeyMaterialError, match="shorter than 12"):
        write_secret(new_secret(), path, passphrase="short")
    write_secret(new_secret(epoch=2), path, passphrase=None, unencrypted_unsafe=True)
    assert read_secret(path).epoch == 2


def test_an_encrypted_file_without_a_passphrase_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "linkage.secret"
    _write(path, new_secret())
    with pytest.raises(KeyMaterialError, match="no passphrase was given"):
        read_secret(path)


def test_a_low_scrypt_cost_is_refused_on_write(tmp_path: Path) -> None:
    with pytest.raises(KeyMaterialError, match="scrypt cost"):
        write_secret(
            new_secret(), tmp_path / "k", passphrase=PASSPHRASE, scrypt_n=MIN_SCRYPT_N // 2
        )


def test_rotation_makes_a_fresh_secret_for_the_next_epoch() -> None:
    current = new_secret(epoch=3)
    following = rotated(current)
    assert following.epoch == 4
    assert following.value != current.value


@pytest.mark.parametrize(
    ("secret_epoch", "requested", "expected"),
    [(0, None, 0), (0, 5, 5), (3, None, 3), (3, 3, 3)],
)
def test_epoch_for_encoding(secret_epoch: int, requested: int | None, expected: int) -> None:
    assert epoch_for(LinkageSecret(b"\x01" * 32, secret_epoch), requested) == expected


def test_a_key_file_epoch_cannot_be_overridden() -> None:
    with pytest.raises(KeyMaterialError, match="not the epoch of the secret file"):
        epoch_for(LinkageSecret(b"\x01" * 32, 3), 2)


def test_node_keys_round_trip_encrypted_and_owner_only(tmp_path: Path) -> None:
    keys = NodeKeys.generate()
    paths = save_node_keys(tmp_path / "node", keys, passphrase=PASSPHRASE)
    for path in paths.values():
        assert path.stat().st_mode & 0o777 == 0o600
    signing = load_signing_key(paths["signing"], passphrase=PASSPHRASE)
    sealing = load_sealing_key(paths["sealing"], passphrase=PASSPHRASE)
    assert signing.fingerprint == keys.signing.fingerprint
    assert sealing.fingerprint == keys.sealing.fingerprint
    assert sealing.fingerprint.startswith("x25519:")
    public = json.loads(paths["public"].read_text())
    assert public["node_key"] == keys.signing.fingerprint
    assert "PRIVATE" not in paths["public"].read_text()


def test_tampered_wrong_or_mismatched_key_files_give_one_opaque_error(tmp_path: Path) -> None:
    keys = NodeKeys.generate()
    paths = save_node_keys(tmp_path, keys, passphrase=PASSPHRASE)
    pem = paths["signing"].read_bytes()
    lines = pem.splitlines()
    lines[2] = bytes([lines[2][0] ^ 0x01]) + lines[2][1:]
    tampered = tmp_path / "tampered.pem"
    tampered.write_bytes(b"\n".join(lines) + b"\n")
    attempts = [
        lambda: load_signing_key(paths["signing"], passphrase="not the passphrase at all"),
        lambda: load_signing_key(tampered, passphrase=PASSPHRASE),
        lambda: load_signing_key(paths["sealing"], passphrase=PASSPHRASE),  # an X25519 key
        lambda: load_sealing_key(paths["signing"], passphrase=PASSPHRASE),
    ]
    messages = set()
    for attempt in attempts:
        with pytest.raises(KeyMaterialError) as caught:
            attempt()
        assert PASSPHRASE not in str(caught.value)
        messages.add(caught.value.message.split(":", 1)[1])
    assert messages == {" wrong passphrase, damaged or not a key"}


def test_unencrypted_signing_key_only_when_asked(tmp_path: Path) -> None:
    path = tmp_path / "dpo.pem"
    with pytest.raises(KeyMaterialError, match="no passphrase"):
        save_signing_key(path, SigningKey.generate(), passphrase=None)
    save_signing_key(path, SigningKey.generate(), passphrase=None, unencrypted_unsafe=True)
    with pytest.raises(KeyMaterialError, match="not encrypted"):
        load_signing_key(path, passphrase=None)
    assert load_signing_key(path, passphrase=None, unencrypted_unsafe=True).fingerprint
