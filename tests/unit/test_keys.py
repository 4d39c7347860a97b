"""Unit tests for keys/: the linkage secret, key derivation, signing keys and the error root."""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from keys import (
    AccessError,
    ConfigError,
    InputError,
    KeyMaterialError,
    KeyPurpose,
    LinkageSecret,
    PlacelinkError,
    PolicyError,
    SigningKey,
    StorageError,
    derive_key,
    fingerprint,
    new_secret,
    read_secret,
    verify_signature,
    write_secret,
)
from keys.derive import DERIVED_KEY_BYTES, HKDF_SALT, derivation_label
from keys.secret import KEY_FILE_HEADER, MIN_SECRET_BYTES

SECRET_BYTES = st.binary(min_size=MIN_SECRET_BYTES, max_size=96)
# Label parts a policy or a schema may use: no '/', never empty.
LABEL_PART = st.text(
    alphabet=st.characters(codec="utf-8", exclude_characters="/"),
    min_size=1,
    max_size=12,
)
PURPOSES = st.sampled_from(list(KeyPurpose))
EPOCHS = st.integers(min_value=0, max_value=2**40)
FINGERPRINT = re.compile(r"^ed25519:[0-9a-f]{64}$")


def _hkdf_sha256(ikm: bytes, *, salt: bytes, info: bytes, length: int) -> bytes:
    """RFC 5869 written out with the standard library, to check derive_key independently."""
    prk = hmac.new(salt, ikm, hashlib.sha256).digest()
    okm, block, counter = b"", b"", 1
    while len(okm) < length:
        block = hmac.new(prk, block + info + bytes([counter]), hashlib.sha256).digest()
        okm += block
        counter += 1
    return okm[:length]


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# --- the linkage secret -------------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(value=SECRET_BYTES)
def test_v1_key_file_is_still_read(value: bytes) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "linkage.key"
        path.write_text(f"{KEY_FILE_HEADER}\n{value.hex()}\n", encoding="ascii")
        assert read_secret(path).value == value
        assert read_secret(path).epoch == 0


@settings(max_examples=60, deadline=None)
@given(value=SECRET_BYTES)
def test_raw_secret_file_of_at_least_32_bytes_is_read_as_is(value: bytes) -> None:
    assume(not value.startswith(KEY_FILE_HEADER.encode("ascii")))
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "raw.bin"
        path.write_bytes(value)
        assert read_secret(path).value == value


@settings(max_examples=50, deadline=None)
@given(value=st.binary(min_size=0, max_size=MIN_SECRET_BYTES - 1))
def test_too_short_raw_file_is_refused_without_its_value(value: bytes) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "raw.bin"
        path.write_bytes(value)
        with pytest.raises(KeyMaterialError) as caught:
            read_secret(path)
    message = str(caught.value)
    assert str(MIN_SECRET_BYTES) in message
    assert caught.value.fix
    if len(value) >= 4:
        assert value.hex() not in message


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(lambda hexed: hexed[:-1], id="odd-length-hex"),
        pytest.param(lambda hexed: hexed[:32], id="too-short-hex"),
        pytest.param(lambda hexed: hexed[:-2] + "zz", id="not-hex"),
        pytest.param(lambda hexed: "", id="no-hex-line"),
        pytest.param(lambda hexed: hexed[:20] + " " + hexed[20:], id="split-line"),
    ],
)
def test_damaged_key_file_is_refused_without_the_secret(
    tmp_path: Path, damage: Callable[[str], str]
) -> None:
    secret = new_secret()
    hexed = secret.value.hex()
    path = tmp_path / "linkage.key"
    path.write_text(f"{KEY_FILE_HEADER}\n{damage(hexed)}\n", encoding="ascii")
    with pytest.raises(KeyMaterialError) as caught:
        read_secret(path)
    shown = str(caught.value) + repr(caught.value) + caught.value.diagnostics()
    assert hexed not in shown
    assert hexed[:16] not in shown
    assert hexed[-16:] not in shown


def test_missing_secret_file_is_a_key_material_error(tmp_path: Path) -> None:
    with pytest.raises(KeyMaterialError, match="cannot read the secret file") as caught:
        read_secret(tmp_path / "absent.key")
    assert "--secret-file" in caught.value.fix


def test_key_file_is_readable_by_its_owner_only(tmp_path: Path) -> None:
    path = tmp_path / "linkage.key"
    write_secret(new_secret(), path, passphrase=None, unencrypted_unsafe=True)
    assert _mode(path) == 0o600


def test_overwriting_a_readable_file_leaves_a_key_file_readable_by_its_owner_only(
    tmp_path: Path,
) -> None:
    path = tmp_path / "linkage.key"
    path.write_text("old\n", encoding="ascii")
    os.chmod(path, 0o644)
    secret = new_secret()
    write_secret(secret, path, passphrase=None, unencrypted_unsafe=True)
    assert _mode(path) == 0o600
    assert read_secret(path).value == secret.value


def test_repr_and_str_of_a_secret_hide_its_value() -> None:
    secret = new_secret()
    for shown in (repr(secret), str(secret), f"{secret}", f"{secret!r}", repr([secret])):
        assert secret.value.hex() not in shown
        assert str(secret.value) not in shown
        assert "hidden" in shown


def test_new_secrets_are_32_random_bytes() -> None:
    first, second = new_secret(), new_secret()
    assert len(first.value) == MIN_SECRET_BYTES == len(second.value)
    assert first.value != second.value


@pytest.mark.parametrize("size", [0, 1, 16, MIN_SECRET_BYTES - 1])
def test_a_secret_shorter_than_32_bytes_cannot_be_made(size: int) -> None:
    with pytest.raises(KeyMaterialError, match="shorter than 32 bytes"):
        LinkageSecret(b"\x01" * size)


# --- key derivation ------------------------------------------------------------------------------


@settings(max_examples=100, deadline=None)
@given(
    value=SECRET_BYTES,
    purpose=PURPOSES,
    policy_id=LABEL_PART,
    epoch=EPOCHS,
    field=LABEL_PART,
)
def test_derive_key_is_hkdf_sha256_over_the_documented_label(
    value: bytes, purpose: KeyPurpose, policy_id: str, epoch: int, field: str
) -> None:
    key = derive_key(
        LinkageSecret(value), purpose=purpose, policy_id=policy_id, epoch=epoch, field=field
    )
    label = f"placelink/v1/{purpose.value}/{policy_id}/{epoch}/{field}".encode()
    assert derivation_label(purpose, policy_id, epoch, field) == label
    assert HKDF_SALT == b"placelink linkage v1"
    expected = _hkdf_sha256(value, salt=HKDF_SALT, info=label, length=DERIVED_KEY_BYTES)
    assert key == expected
    assert len(key) == 32


@settings(max_examples=150, deadline=None)
@given(
    first=st.tuples(PURPOSES, LABEL_PART, EPOCHS, LABEL_PART),
    second=st.tuples(PURPOSES, LABEL_PART, EPOCHS, LABEL_PART),
)
def test_different_purpose_policy_epoch_or_field_give_different_keys(
    first: tuple[KeyPurpose, str, int, str], second: tuple[KeyPurpose, str, int, str]
) -> None:
    assume(first != second)
    secret = LinkageSecret(bytes(range(32)))

    def key(parts: tuple[KeyPurpose, str, int, str]) -> bytes:
        purpose, policy_id, epoch, field = parts
        return derive_key(secret, purpose=purpose, policy_id=policy_id, epoch=epoch, field=field)

    assert derivation_label(*first) != derivation_label(*second)
    assert key(first) != key(second)
    assert key(first) == key(first)


@settings(max_examples=50, deadline=None)
@given(purpose=PURPOSES, policy_id=LABEL_PART, epoch=EPOCHS, field=LABEL_PART)
def test_changing_any_one_part_changes_the_key(
    purpose: KeyPurpose, policy_id: str, epoch: int, field: str
) -> None:
    secret = LinkageSecret(b"\x42" * 32)
    base = derive_key(secret, purpose=purpose, policy_id=policy_id, epoch=epoch, field=field)
    other_purpose = KeyPurpose.TOKEN if purpose is KeyPurpose.BLOOM else KeyPurpose.BLOOM
    variants = [
        derive_key(secret, purpose=other_purpose, policy_id=policy_id, epoch=epoch, field=field),
        derive_key(secret, purpose=purpose, policy_id=policy_id + "x", epoch=epoch, field=field),
        derive_key(secret, purpose=purpose, policy_id=policy_id, epoch=epoch + 1, field=field),
        derive_key(secret, purpose=purpose, policy_id=policy_id, epoch=epoch, field=field + "x"),
        derive_key(
            LinkageSecret(b"\x43" * 32),
            purpose=purpose,
            policy_id=policy_id,
            epoch=epoch,
            field=field,
        ),
    ]
    assert len({base, *variants}) == 6


@pytest.mark.parametrize(
    ("policy_id", "epoch", "field", "named"),
    [
        ("", 0, "given_name", "policy_id"),
        ("a/b", 0, "given_name", "policy_id"),
        ("/", 0, "given_name", "policy_id"),
        ("kat", 0, "", "field"),
        ("kat", 0, "given/name", "field"),
        ("kat", -1, "given_name", "epoch"),
    ],
)
def test_bad_label_parts_are_refused(policy_id: str, epoch: int, field: str, named: str) -> None:
    with pytest.raises(KeyMaterialError) as caught:
        derive_key(
            new_secret(), purpose=KeyPurpose.BLOOM, policy_id=policy_id, epoch=epoch, field=field
        )
    assert named in caught.value.message
    assert caught.value.fix


def test_derive_key_parameters_are_keyword_only() -> None:
    with pytest.raises(TypeError):
        derive_key(new_secret(), KeyPurpose.BLOOM, "kat", 0, "given_name")  # type: ignore[call-arg]


# --- signing keys --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def signing_key() -> SigningKey:
    return SigningKey.generate()


@settings(max_examples=80, deadline=None)
@given(message=st.binary(max_size=512))
def test_sign_and_verify_round_trip(signing_key: SigningKey, message: bytes) -> None:
    signature = signing_key.sign(message)
    assert len(signature) == 64
    verify_signature(signing_key.public_raw, signature, message)


def _verification_error(public: bytes, signature: bytes, message: bytes) -> KeyMaterialError:
    with pytest.raises(KeyMaterialError) as caught:
        verify_signature(public, signature, message)
    return caught.value


@settings(max_examples=60, deadline=None)
@given(message=st.binary(min_size=1, max_size=256), data=st.data())
def test_tampered_message_signature_or_key_fail_with_one_opaque_error(
    signing_key: SigningKey, message: bytes, data: st.DataObject
) -> None:
    signature = signing_key.sign(message)
    public = signing_key.public_raw
    index = data.draw(st.integers(0, len(message) - 1), label="message byte")
    bit = data.draw(st.integers(0, 7), label="bit")
    tampered_message = bytearray(message)
    tampered_message[index] ^= 1 << bit
    sig_index = data.draw(st.integers(0, 63), label="signature byte")
    tampered_signature = bytearray(signature)
    tampered_signature[sig_index] ^= 1 << bit
    errors = [
        _verification_error(public, signature, bytes(tampered_message)),
        _verification_error(public, bytes(tampered_signature), message),
        _verification_error(SigningKey.generate().public_raw, signature, message),
        _verification_error(public, signature[:-1], message),
        _verification_error(public[:-1], signature, message),
        _verification_error(b"", signature, message),
    ]
    assert {(e.message, e.fix) for e in errors} == {(errors[0].message, errors[0].fix)}
    assert errors[0].message == "signature verification failed"
    for error in errors:
        assert signature.hex() not in str(error)
        assert public.hex() not in str(error)


def test_fingerprint_is_ed25519_and_sha256_of_the_raw_public_key(signing_key: SigningKey) -> None:
    public = signing_key.public_raw
    assert len(public) == 32
    assert FINGERPRINT.match(signing_key.fingerprint)
    assert signing_key.fingerprint == "ed25519:" + hashlib.sha256(public).hexdigest()
    assert fingerprint(public) == signing_key.fingerprint
    assert SigningKey.generate().fingerprint != signing_key.fingerprint


@settings(max_examples=50, deadline=None)
@given(raw=st.binary(min_size=32, max_size=32))
def test_fingerprint_format_for_any_raw_key(raw: bytes) -> None:
    value = fingerprint(raw)
    assert FINGERPRINT.match(value)
    assert bytes.fromhex(value.removeprefix("ed25519:")) == hashlib.sha256(raw).digest()


def test_repr_of_a_signing_key_shows_only_its_fingerprint(signing_key: SigningKey) -> None:
    from cryptography.hazmat.primitives.serialization import (
        Encoding,
        NoEncryption,
        PrivateFormat,
    )

    private_raw = signing_key.private.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
    assert repr(signing_key) == f"SigningKey({signing_key.fingerprint})"
    assert private_raw.hex() not in repr(signing_key)


# --- errors --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kind",
    [ConfigError, PolicyError, KeyMaterialError, InputError, StorageError, AccessError],
)
def test_every_error_is_a_placelink_error_with_diagnostics(kind: type[PlacelinkError]) -> None:
    error = kind("the policy file p.yaml has no status", fix="add `status: active`")
    assert isinstance(error, PlacelinkError)
    assert (
        error.diagnostics() == "the policy file p.yaml has no status\n  fix: add `status: active`"
    )
    assert str(error) == error.diagnostics()
    assert error.message == "the policy file p.yaml has no status"
    assert error.fix == "add `status: active`"


def test_diagnostics_without_a_fix_is_the_message_alone() -> None:
    error = PlacelinkError("something failed")
    assert error.diagnostics() == "something failed"
    assert "fix:" not in str(error)


def test_fix_is_keyword_only() -> None:
    with pytest.raises(TypeError):
        PlacelinkError("message", "fix")  # type: ignore[call-arg]
