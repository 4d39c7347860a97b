"""``placelink gateway check | publish | serve``: an agency node's jobs. ``check`` reports
per-field validity of an extract before anything is encoded; ``publish`` is one node's encode,
sign and upload, in one command; ``serve`` runs the node's own API (gateway/app.py) under
gunicorn. ``publish`` takes the node's publication lock and writes the node's publication log,
as the API does, so the two never publish at once and the API lists both.

Run it on the schedule, and again right after a key rotation (with the new epoch's secret
file): the key file names its epoch, so re-encoding and re-publishing under the new epoch is
this same command. Passphrases come from PLACELINK_SECRET_PASSPHRASE and
PLACELINK_NODE_PASSPHRASE (or a prompt), never from argv. The node publishes only under a policy
approved by every required DPO whose key is in PLACELINK_TRUSTED_DPO_KEYS (as the service).

A ``publish`` killed mid-way (or one that could not reach the service) leaves a pending
publication in the state folder; the next ``publish`` (or POST /v1/publications) resumes that
batch and stops there (``resumed``), and ``--discard-pending`` drops it, keeping its
pseudonyms, when the service refuses it for good (gateway/node.py, docs/agency-it.md).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from placelink.commands import Commands

if TYPE_CHECKING:
    from gateway.oauth_client import ClientCredentials
    from keys import SigningKey

TRUST_VARIABLE = "PLACELINK_TRUSTED_DPO_KEYS"
NODE_API_BIND = "127.0.0.1:8090"  # local to the agency by default
# Both services' gunicorn settings (JSON request logs that never hold a query string or a
# header, multi-process metrics), as deploy/gateway.gunicorn.conf.py uses them.
GUNICORN_SETTINGS = "python:policies.gunicorn_settings"


def _publish(args: argparse.Namespace) -> int:
    from gateway.node import NodeConfig, publish
    from gateway.publications import publish_and_record
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
    credentials = _credentials(args, node_key)
    _announce_pending(config.state_dir, args.source, discard=args.discard_pending)
    record, error = publish_and_record(
        lambda: publish(
            config,
            policy=load_policy(Path(args.policy)),
            schema=load_schema(Path(args.schema)) if args.schema else default_schema(),
            secret=secret,
            node_key=node_key,
            epoch=secret.epoch,
            today=dt.date.today(),
            trust=PolicyTrust(_trusted_dpo_keys()),
            auth=credentials.headers,
            discard_pending=args.discard_pending,
        ),
        state_dir=config.state_dir,
        trigger="cli",
        requested_by="cli",
    )
    if error is not None:
        raise error
    if record.pending in ("discarded", "expired"):
        print(f"dropped the pending publication ({record.pending}); its pseudonyms are kept",
              file=sys.stderr)  # fmt: skip
    if record.outcome == "resumed":
        print(f"resumed the pending publication: {record.records} records of {args.source} "
              f"under epoch {record.epoch} (batch {record.batch_id}); the extract was not read "
              "again: the next publication sends it")  # fmt: skip
        return 0
    print(f"published {record.records} records of {args.source} under epoch {record.epoch}")
    return 0


def _announce_pending(state_dir: Path, source: str, *, discard: bool) -> None:
    """Say on stderr, before the work, that a pending publication goes first."""
    from gateway.pending import find_pending
    from keys.errors import PlacelinkError

    try:
        waiting = find_pending(state_dir, source)
    except PlacelinkError:
        return  # the publication itself reports it, and logs it
    if waiting is not None:
        what = "dropping" if discard else "resuming"
        print(f"{what} the pending publication (batch {waiting.batch_id}, saved "
              f"{waiting.saved_at})", file=sys.stderr)  # fmt: skip


def _credentials(args: argparse.Namespace, node_key: SigningKey) -> ClientCredentials:
    """The node's OAuth client: ``private_key_jwt`` with its node key, unless a client secret
    is given (``--client-secret-file`` or PLACELINK_CLIENT_SECRET)."""
    from gateway.oauth_client import (
        CLIENT_ID_ENV,
        ClientCredentials,
        read_client_secret,
        token_url_for,
    )

    client_id = args.client_id or os.environ.get(CLIENT_ID_ENV, "") or f"{args.source}-gateway"
    secret_file = Path(args.client_secret_file) if args.client_secret_file else None
    secret = read_client_secret(secret_file)
    token_url = args.token_url or token_url_for(args.service)
    if secret:
        return ClientCredentials(token_url, client_id, client_secret=secret, scope="submit")
    return ClientCredentials(token_url, client_id, node_key=node_key, scope="submit")


def _serve(args: argparse.Namespace) -> int:
    """Check the node's settings and material here (a clear error, exit 1), then become
    gunicorn serving the node API (so a service manager's signals reach gunicorn), with the
    settings of :mod:`policies.gunicorn_settings`: /metrics on any worker counts them all."""
    from gateway.node_settings import load_material, settings_from_environment
    from keys.errors import ConfigError

    load_material(settings_from_environment(os.environ), today=dt.date.today())
    bind = args.bind or os.environ.get("PLACELINK_BIND", NODE_API_BIND)
    workers = args.workers or os.environ.get("PLACELINK_WORKERS", "2")
    if not str(workers).isdigit() or int(workers) < 1:
        raise ConfigError("the worker count is not a positive number", fix="use --workers N")
    command = [
        sys.executable, "-m", "gunicorn", "-c", GUNICORN_SETTINGS, "--bind", bind,
        "--workers", str(workers), "gateway.app:app_from_environment()",
    ]  # fmt: skip
    print(f"serving the gateway node API on {bind}", file=sys.stderr, flush=True)
    os.execv(sys.executable, command)  # noqa: S606 (our own interpreter, fixed arguments)


def _check(args: argparse.Namespace) -> int:
    from gateway.pipeline import check_csv

    mapping = Path(args.mapping) if args.mapping else None
    count, report = check_csv(Path(args.input), mapping_path=mapping)
    rows = {
        name: {
            "valid": r.valid,
            "unverified": r.unverified,
            "invalid": r.invalid,
            "missing": r.missing,
            "validity": round(r.validity, 4),
            "first_invalid_rows": r.first_invalid_rows,
        }
        for name, r in report.items()
    }
    if args.json:
        print(json.dumps({"records": count, "fields": rows}, indent=2))
        return 0
    print(f"{count} records; per field (invalid values would be treated as missing):")
    print(f"  {'field':<14}{'validity':>9}{'valid':>8}{'foreign':>8}{'invalid':>8}{'missing':>8}")
    for name, r in report.items():
        line = f"  {name:<14}{r.validity:>9.2%}{r.valid:>8}{r.unverified:>8}{r.invalid:>8}"
        line += f"{r.missing:>8}"
        first = ", ".join(str(row) for row in r.first_invalid_rows)
        print(line + (f"  first invalid rows: {first}" if first else ""))
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
    add("--client-id", help="OAuth client id (else $PLACELINK_CLIENT_ID, else SOURCE-gateway)")
    add("--client-secret-file", help="use a client secret, not the node key (private_key_jwt)")
    add("--token-url", help="token endpoint (default: the service's /v1/oauth/token)")
    add("--discard-pending", action="store_true",
        help="drop a pending publication the service refuses (keeps its pseudonyms)")  # fmt: skip
    publish.set_defaults(handler=_publish)

    serve = verbs.add_parser(
        "serve", help="run the node's own API under gunicorn (PLACELINK_NODE_* settings)"
    )
    add = serve.add_argument
    add("--bind", help=f"address (default: PLACELINK_BIND, else {NODE_API_BIND})")
    add("--workers", type=int, help="gunicorn workers (default: PLACELINK_WORKERS, else 2)")
    serve.set_defaults(handler=_serve)

    check = verbs.add_parser(
        "check", help="per-field validity rates of a CSV through its mapping (encodes nothing)"
    )
    check.add_argument("--input", required=True, help="agency CSV")
    check.add_argument("--mapping", help="column mapping YAML (default: canonical columns)")
    check.add_argument("--json", action="store_true", help="print the report as JSON")
    check.set_defaults(handler=_check)
