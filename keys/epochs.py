"""Key epochs as a gateway sees them: which epoch an encoding is made under.

A v2 key file carries its epoch (``placelink keys rotate`` makes the next one); a v1 or raw
file is epoch 0, and a script may name another with ``--epoch``. A key file that carries an
epoch other than 0 may not be used under another epoch: encodings made so would never link.
"""

from __future__ import annotations

from keys.errors import KeyMaterialError
from keys.keyfiles import passphrase_from_environment
from keys.secret import PASSPHRASE_VARIABLE, LinkageSecret


def epoch_for(secret: LinkageSecret, requested: int | None) -> int:
    """The epoch to encode under: the secret's, or the one asked for when they can agree."""
    if requested is None or requested == secret.epoch:
        return secret.epoch
    if secret.epoch != 0:
        raise KeyMaterialError(
            "the requested epoch is not the epoch of the secret file",
            fix="leave out --epoch: the key file names its own epoch",
        )
    if requested < 0:
        raise KeyMaterialError("the epoch is negative", fix="use an epoch >= 0")
    return requested


def secret_passphrase(*, prompt: bool = True) -> str | None:
    """The linkage secret's passphrase: PLACELINK_SECRET_PASSPHRASE, or asked at a terminal."""
    return passphrase_from_environment(PASSPHRASE_VARIABLE, prompt=prompt)
