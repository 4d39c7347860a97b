"""Access tokens for the CLI's calls to the linkage service, from files and environment only.

In this order: an access token in ``--token-file`` or ``PLACELINK_TOKEN`` (from an external
issuer, say); else OAuth client credentials, the client id from ``--client-id`` or
``PLACELINK_CLIENT_ID`` and its secret from ``--client-secret-file`` or
``PLACELINK_CLIENT_SECRET``, traded at the service's token endpoint. Never a secret in argv.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

TOKEN_ENV = "PLACELINK_TOKEN"  # noqa: S105 (the name of an environment variable)


def add_credential_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--client-id", help="OAuth client id (else $PLACELINK_CLIENT_ID)")
    parser.add_argument(
        "--client-secret-file",
        help="file holding the client secret (else $PLACELINK_CLIENT_SECRET)",
    )
    parser.add_argument("--token-file", help=f"file holding an access token (else ${TOKEN_ENV})")


def access_token(args: argparse.Namespace, service_url: str, *, scope: str = "") -> str:
    """The access token the flags and environment lead to; a clear error when none do."""
    from gateway.oauth_client import (
        CLIENT_ID_ENV,
        SECRET_ENV,
        ClientCredentials,
        read_client_secret,
        token_url_for,
    )
    from keys.errors import AccessError, ConfigError

    if args.token_file:
        try:
            return Path(args.token_file).read_text(encoding="utf-8").strip()
        except OSError:
            raise ConfigError(
                f"cannot read the token file {args.token_file}", fix="check the path"
            ) from None
    token = os.environ.get(TOKEN_ENV, "").strip()
    if token:
        return token
    client_id = args.client_id or os.environ.get(CLIENT_ID_ENV, "")
    secret_file = Path(args.client_secret_file) if args.client_secret_file else None
    secret = read_client_secret(secret_file)
    if not client_id or not secret:
        raise AccessError(
            "no credentials for the linkage service were given",
            fix=f"set {CLIENT_ID_ENV} and {SECRET_ENV} (or --client-id and --client-secret-file),"
            f" or pass --token-file FILE / set {TOKEN_ENV}; never put a secret on the command line",
        )
    client = ClientCredentials(
        token_url_for(service_url), client_id, client_secret=secret, scope=scope
    )
    return client.access_token()
