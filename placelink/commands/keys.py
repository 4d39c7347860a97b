"""``placelink keys ...``: the linkage secret and DPO signing keys."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from placelink.commands import Commands


def _secret_new(args: argparse.Namespace) -> int:
    from keys import new_secret, write_secret

    output = Path(args.output)
    if output.exists() and not args.force:
        print(
            f"error: {output} exists\n  fix: choose another path or pass --force", file=sys.stderr
        )
        return 1
    write_secret(new_secret(), output)
    print(f"wrote a new linkage secret to {output} (mode 0600); share it only between gateways")
    return 0


def _dpo_new(args: argparse.Namespace) -> int:
    from keys import SigningKey, save_signing_key
    from placelink.commands.policy import PASSPHRASE_ENV

    output = Path(args.output)
    if output.exists() and not args.force:
        print(
            f"error: {output} exists\n  fix: choose another path or pass --force", file=sys.stderr
        )
        return 1
    passphrase = None if args.unencrypted_unsafe else os.environ.get(args.passphrase_env)
    if passphrase is None and not args.unencrypted_unsafe:
        print(
            f"error: the environment variable {args.passphrase_env} is not set\n"
            f"  fix: export {args.passphrase_env} (default {PASSPHRASE_ENV}) with the passphrase",
            file=sys.stderr,
        )
        return 1
    key = SigningKey.generate()
    save_signing_key(output, key, passphrase=passphrase, unencrypted_unsafe=args.unencrypted_unsafe)
    print(key.fingerprint)
    print(
        f"wrote a DPO signing key to {output} (mode 0600); put the fingerprint above in the "
        "policy as dpo_key of your parties, and give it to the linkage service operator",
        file=sys.stderr,
    )
    return 0


def register(commands: Commands) -> None:
    keys = commands.add_parser("keys", help="key management")
    nouns = keys.add_subparsers(dest="what", required=True)
    secret = nouns.add_parser("secret", help="the linkage secret")
    verbs = secret.add_subparsers(dest="verb", required=True)
    new = verbs.add_parser("new", help="make a new linkage secret")
    new.add_argument("--output", required=True, help="key file to write (mode 0600)")
    new.add_argument("--force", action="store_true", help="overwrite an existing file")
    new.set_defaults(handler=_secret_new)

    dpo = nouns.add_parser("dpo", help="DPO signing keys (approve policies)")
    dpo_verbs = dpo.add_subparsers(dest="verb", required=True)
    dpo_new = dpo_verbs.add_parser("new", help="make a DPO signing key (Ed25519, encrypted)")
    dpo_new.add_argument("--output", required=True, help="key file to write (PKCS #8 PEM, 0600)")
    dpo_new.add_argument("--force", action="store_true", help="overwrite an existing file")
    dpo_new.add_argument(
        "--passphrase-env",
        default="PLACELINK_DPO_PASSPHRASE",
        help="environment variable holding the passphrase (default PLACELINK_DPO_PASSPHRASE)",
    )
    dpo_new.add_argument(
        "--unencrypted-unsafe", action="store_true", help="write the key unencrypted (tests only)"
    )
    dpo_new.set_defaults(handler=_dpo_new)
