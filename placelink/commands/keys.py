"""``placelink keys ...``: the linkage secret and its shares, rotation, node and DPO keys,
revocation. Passphrases come from environment variables or a prompt, never from argv; a key is
written unencrypted only with ``--unencrypted-unsafe``. See docs/key-ceremony.md."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from keys.errors import ConfigError, KeyMaterialError
from placelink.commands import Commands
from placelink.commands.audit import record_key_event

if TYPE_CHECKING:
    from keys import LinkageSecret

SECRET_VARIABLE = "PLACELINK_SECRET_PASSPHRASE"  # noqa: S105 (variable names)
NODE_VARIABLE = "PLACELINK_NODE_PASSPHRASE"
DPO_VARIABLE = "PLACELINK_DPO_PASSPHRASE"


def _refuse_overwrite(path: Path, force: bool) -> None:
    if path.exists() and not force:
        raise ConfigError(f"{path} exists", fix="choose another path or pass --force")


def _passphrase_for_writing(variable: str, unencrypted_unsafe: bool) -> str | None:
    if unencrypted_unsafe:
        return None
    from keys import passphrase_from_environment

    passphrase = passphrase_from_environment(variable, confirm=True)
    if passphrase is None:
        raise KeyMaterialError(
            f"no passphrase: {variable} is not set and no terminal is there to ask for one",
            fix=f"export {variable}, or run at a terminal (or --unencrypted-unsafe, tests only)",
        )
    return passphrase


def _write_secret_file(args: argparse.Namespace, secret: LinkageSecret, output: Path) -> None:
    from keys import write_secret

    passphrase = _passphrase_for_writing(SECRET_VARIABLE, args.unencrypted_unsafe)
    output.parent.mkdir(parents=True, exist_ok=True)
    write_secret(secret, output, passphrase=passphrase, unencrypted_unsafe=args.unencrypted_unsafe)
    state = "UNENCRYPTED" if passphrase is None else "encrypted"
    record_key_event(args, epoch=secret.epoch)
    print(f"wrote the linkage secret for epoch {secret.epoch} to {output} ({state}, mode 0600)")


def _read_secret_file(path: Path) -> LinkageSecret:
    from keys import passphrase_from_environment, read_secret

    return read_secret(path, passphrase=lambda: passphrase_from_environment(SECRET_VARIABLE))


def _secret_new(args: argparse.Namespace) -> int:
    from keys import new_secret

    output = Path(args.output)
    _refuse_overwrite(output, args.force)
    _write_secret_file(args, new_secret(epoch=args.epoch), output)
    print("share it only between gateways: split it with `placelink keys secret split`")
    return 0


def _secret_split(args: argparse.Namespace) -> int:
    from keys import split_secret, write_share

    secret = _read_secret_file(Path(args.secret))
    mnemonics = split_secret(secret, threshold=args.threshold, shares=args.shares)
    folder = Path(args.output_dir)
    paths = [folder / f"share-{n}-of-{args.shares}.txt" for n in range(1, args.shares + 1)]
    for path in paths:  # all checked before any is written: never half a split on disk
        _refuse_overwrite(path, args.force)
    folder.mkdir(parents=True, exist_ok=True)
    for number, (path, words) in enumerate(zip(paths, mnemonics, strict=True), start=1):
        write_share(path, words, number=number, count=args.shares, threshold=args.threshold)
        print(f"wrote {path}")
    record_key_event(args, epoch=secret.epoch, shares=args.shares, threshold=args.threshold)
    print(f"any {args.threshold} of the {args.shares} shares rebuild epoch {secret.epoch}'s secret")
    return 0


def _secret_combine(args: argparse.Namespace) -> int:
    from keys import combine_shares, read_share

    output = Path(args.output)
    _refuse_overwrite(output, args.force)
    secret = combine_shares([read_share(Path(p)) for p in args.shares])
    _write_secret_file(args, secret, output)
    return 0


def _rotate(args: argparse.Namespace) -> int:
    from keys import rotated

    current = _read_secret_file(Path(args.secret))
    output = Path(args.output)
    _refuse_overwrite(output, args.force)
    _write_secret_file(args, rotated(current), output)
    print("next: split it, give every gateway the new secret, and publish again from each")
    return 0


def _node_new(args: argparse.Namespace) -> int:
    from keys import NodeKeys, save_node_keys

    folder = Path(args.output_dir)
    for name in ("node-signing.pem", "node-sealing.pem"):
        _refuse_overwrite(folder / name, args.force)
    passphrase = _passphrase_for_writing(NODE_VARIABLE, args.unencrypted_unsafe)
    keys = NodeKeys.generate()
    paths = save_node_keys(
        folder, keys, passphrase=passphrase, unencrypted_unsafe=args.unencrypted_unsafe
    )
    print(f"wrote {paths['signing']}, {paths['sealing']} and {paths['public']}", file=sys.stderr)
    record_key_event(args, node_key=keys.signing.fingerprint)
    print(
        json.dumps(keys.public_description(), indent=2) if args.json else keys.signing.fingerprint
    )
    return 0


def _dpo_new(args: argparse.Namespace) -> int:
    from keys import SigningKey, save_signing_key

    output = Path(args.output)
    _refuse_overwrite(output, args.force)
    passphrase = _passphrase_for_writing(DPO_VARIABLE, args.unencrypted_unsafe)
    key = SigningKey.generate()
    output.parent.mkdir(parents=True, exist_ok=True)
    save_signing_key(output, key, passphrase=passphrase, unencrypted_unsafe=args.unencrypted_unsafe)
    record_key_event(args)
    print(f"wrote {output}", file=sys.stderr)
    print(key.fingerprint)
    return 0


def _revoke(args: argparse.Namespace) -> int:
    from linkage.revocations import revoke_at_service
    from placelink.commands.credentials import access_token

    token = access_token(args, args.service, scope="admin")
    answer = revoke_at_service(args.service, args.node_key, token=token)
    print(f"revoked {answer['node_key']} at {answer['revoked_at']}; its uploads are refused")
    return 0


def _client_secret(args: argparse.Namespace) -> int:
    """A new OAuth client secret in a 0600 file; stdout: the hash for the clients file."""
    from gateway.oauth_client import new_client_secret
    from keys.keyfiles import write_private_file
    from linkage.clients import hash_client_secret

    output = Path(args.output)
    _refuse_overwrite(output, args.force)
    secret = new_client_secret()
    write_private_file(output, (secret + "\n").encode())
    print(f"wrote the client secret to {output}; give it to the client only", file=sys.stderr)
    print(f'secret_hash: "{hash_client_secret(secret)}"')
    return 0


def _add_write_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--force", action="store_true", help="overwrite existing files")
    parser.add_argument(
        "--unencrypted-unsafe",
        action="store_true",
        help="write the key without a passphrase (tests and throwaway demos only)",
    )
    parser.add_argument("--audit-log", help="an audit log to record the key event in (docs/dpo.md)")


def _register_secret(nouns: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    verbs = nouns.add_parser("secret", help="the linkage secret").add_subparsers(
        dest="verb", required=True
    )
    new = verbs.add_parser("new", help="make a new linkage secret (CSPRNG)")
    new.add_argument("--output", required=True, help="key file to write (mode 0600)")
    new.add_argument("--epoch", type=int, default=0, help="its key epoch (default 0)")
    _add_write_flags(new)
    new.set_defaults(handler=_secret_new)
    split = verbs.add_parser("split", help="split the secret into shares (Shamir, SLIP-39)")
    split.add_argument("--secret", required=True, help="key file to split")
    split.add_argument("--threshold", type=int, required=True, help="shares needed to rebuild")
    split.add_argument("--shares", type=int, required=True, help="shares to make (<= 16)")
    split.add_argument("--output-dir", required=True, help="folder for share-N-of-M.txt files")
    split.add_argument("--force", action="store_true", help="overwrite existing share files")
    split.add_argument("--audit-log", help="an audit log to record the split in (docs/dpo.md)")
    split.set_defaults(handler=_secret_split)
    combine = verbs.add_parser("combine", help="rebuild the secret from shares, on a gateway")
    combine.add_argument("shares", nargs="+", help="share files (at least the threshold)")
    combine.add_argument("--output", required=True, help="key file to write (mode 0600)")
    _add_write_flags(combine)
    combine.set_defaults(handler=_secret_combine)


def register(commands: Commands) -> None:
    keys = commands.add_parser("keys", help="key management (docs/key-ceremony.md)")
    nouns = keys.add_subparsers(dest="what", required=True)
    _register_secret(nouns)
    rotate = nouns.add_parser("rotate", help="open a new key epoch with a fresh secret")
    rotate.add_argument("--secret", required=True, help="the current epoch's key file")
    rotate.add_argument("--output", required=True, help="the new epoch's key file")
    _add_write_flags(rotate)
    rotate.set_defaults(handler=_rotate)
    node = nouns.add_parser("node", help="a gateway node's keys").add_subparsers(
        dest="verb", required=True
    )
    node_new = node.add_parser("new", help="make Ed25519 signing and X25519 sealing keys")
    node_new.add_argument("--output-dir", required=True, help="folder for the key files")
    node_new.add_argument("--json", action="store_true", help="print the public description")
    _add_write_flags(node_new)
    node_new.set_defaults(handler=_node_new)
    dpo = nouns.add_parser("dpo", help="a DPO's policy-signing key").add_subparsers(
        dest="verb", required=True
    )
    dpo_new = dpo.add_parser("new", help="make an Ed25519 key to sign policies")
    dpo_new.add_argument("--output", required=True, help="key file to write (mode 0600)")
    _add_write_flags(dpo_new)
    dpo_new.set_defaults(handler=_dpo_new)
    client = nouns.add_parser("client-secret", help="make an OAuth client secret and its hash")
    client.add_argument("--output", required=True, help="file for the secret (mode 0600)")
    client.add_argument("--force", action="store_true", help="overwrite an existing file")
    client.set_defaults(handler=_client_secret)
    revoke = nouns.add_parser("revoke", help="stop a node key's uploads at once")
    revoke.add_argument("--service", required=True, help="the linkage service's URL")
    revoke.add_argument("--node-key", required=True, help="fingerprint (ed25519:...) to revoke")
    from placelink.commands.credentials import add_credential_flags

    add_credential_flags(revoke)
    revoke.set_defaults(handler=_revoke)
