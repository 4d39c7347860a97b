"""``placelink gateway publish``: one node's encode, sign and upload, in one command.

Run it on the schedule, and again right after a key rotation (with the new epoch's secret
file): the key file names its epoch, so re-encoding and re-publishing under the new epoch is
this same command. Passphrases come from PLACELINK_SECRET_PASSPHRASE and
PLACELINK_NODE_PASSPHRASE (or a prompt), never from argv. The node publishes only under a policy
approved by every required DPO whose key is in PLACELINK_TRUSTED_DPO_KEYS (as the service).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
from pathlib import Path

from placelink.commands import Commands

TRUST_VARIABLE = "PLACELINK_TRUSTED_DPO_KEYS"


def _publish(args: argparse.Namespace) -> int:
    from gateway.node import NodeConfig, publish
    from gateway.schema import default_schema
    from keys import load_signing_key, passphrase_from_environment, read_secret
    from policies.approvals import PolicyTrust
    from policies.linkage_schema import load_schema
    from policies.model import load_policy

    secret = read_secret(
        Path(args.secret_file),
        passphrase=lambda: passphrase_from_environment("PLACELINK_SECRET_PASSPHRASE"),
    )
    node_key = load_signing_key(
        Path(args.node_key),
        passphrase=passphrase_from_environment("PLACELINK_NODE_PASSPHRASE"),
        unencrypted_unsafe=args.unencrypted_unsafe,
    )
    config = NodeConfig(
        args.source, Path(args.input), Path(args.mapping), Path(args.state), args.service
    )
    publication = publish(
        config,
        policy=load_policy(Path(args.policy)),
        schema=load_schema(Path(args.schema)) if args.schema else default_schema(),
        secret=secret,
        node_key=node_key,
        epoch=secret.epoch,
        today=dt.date.today(),
        trust=PolicyTrust(_trusted_dpo_keys()),
    )
    batch = publication.result.batch
    print(f"published {len(batch)} records of {args.source} under epoch {batch.epoch}")
    return 0


def _trusted_dpo_keys() -> frozenset[str]:
    """The DPO keys this node trusts, as the service reads them (empty: publish nothing)."""
    raw = os.environ.get(TRUST_VARIABLE, "")
    return frozenset(key.strip() for key in raw.split(",") if key.strip())


def register(commands: Commands) -> None:
    gateway = commands.add_parser("gateway", help="a gateway node's jobs (docs/agency-it.md)")
    verbs = gateway.add_subparsers(dest="verb", required=True)
    publish = verbs.add_parser("publish", help="encode, sign and upload this node's records")
    add = publish.add_argument
    add("--policy", required=True, help="the signed sharing policy YAML")
    add("--secret-file", required=True, help="the linkage secret key file (names its epoch)")
    add("--node-key", required=True, help="the node's signing key (node-signing.pem)")
    add("--source", required=True, help="this agency's party id in the policy")
    add("--input", required=True, help="the agency's CSV extract")
    add("--mapping", required=True, help="column mapping YAML")
    add("--state", required=True, help="the node's state folder (pseudonym maps)")
    add("--service", required=True, help="the linkage service's URL")
    add("--schema", help="linkage schema YAML (default: the shipped one)")
    add("--unencrypted-unsafe", action="store_true", help="accept an unencrypted node key")
    publish.set_defaults(handler=_publish)
