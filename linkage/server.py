"""Running the linkage service under gunicorn on a loopback port, as a child process.

Used by the demo and the integration tests: the socket is bound here (port 0, so the kernel
picks a free port with no race) and handed to gunicorn as ``fd://N``.
"""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import requests

from keys.errors import ConfigError


@dataclass
class RunningService:
    url: str
    process: subprocess.Popen[bytes]
    log_path: Path
    audit_log: Path | None = None
    service_key: str = ""  # the fingerprint of the key that signs its audit checkpoints

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def _wait_until_healthy(
    url: str, process: subprocess.Popen[bytes], log: Path, timeout: float
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise ConfigError(
                f"the linkage service exited at start-up; see {log}",
                fix="read the log; check the policy files and database URL",
            )
        try:
            if requests.get(f"{url}/healthz", timeout=1).ok:
                return
        except requests.RequestException:
            pass
        time.sleep(0.1)
    raise ConfigError(f"the linkage service did not become healthy; see {log}", fix="read the log")


def start_service(
    *,
    database_url: str,
    policy_paths: list[Path],
    schema_paths: list[Path],
    log_path: Path,
    trusted_dpo_keys: list[str],
    clients_path: Path | None = None,
    oauth_signing_key: Path | None = None,
    oauth_key_unencrypted_unsafe: bool = False,
    token_lifetime_s: int | None = None,
    host: str = "127.0.0.1",
    timeout: float = 30.0,
) -> RunningService:
    """Start gunicorn serving the linkage app; returns once /healthz answers. Without a
    clients file every gated endpoint denies; the signing key's passphrase, if any, comes
    from PLACELINK_OAUTH_KEY_PASSPHRASE in this process's environment. Its audit log is
    ``service-audit.jsonl`` beside ``log_path``, checkpointed under a fresh key."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, 0))
    sock.listen(128)
    port = sock.getsockname()[1]
    env = dict(os.environ)
    env.update(
        PLACELINK_DATABASE_URL=database_url,
        PLACELINK_POLICIES=":".join(str(p) for p in policy_paths),
        PLACELINK_SCHEMAS=":".join(str(p) for p in schema_paths),
        PLACELINK_TRUSTED_DPO_KEYS=",".join(trusted_dpo_keys),
        PLACELINK_CLIENTS=str(clients_path or ""),
        PLACELINK_OAUTH_SIGNING_KEY=str(oauth_signing_key or ""),
        PLACELINK_OAUTH_KEY_UNENCRYPTED_UNSAFE="1" if oauth_key_unencrypted_unsafe else "",
        PLACELINK_TOKEN_LIFETIME=str(token_lifetime_s or ""),
    )
    audit_log, service_key = _audit_settings(log_path.parent, env)
    for stale in ("PLACELINK_ALLOW_UNSIGNED_POLICIES_UNSAFE", "PLACELINK_OAUTH_JWKS"):
        env.pop(stale, None)
    command = [
        sys.executable,
        "-m",
        "gunicorn",
        "--bind",
        f"fd://{sock.fileno()}",
        "--workers",
        "1",
        "--threads",
        "4",
        "--timeout",
        "600",
        "--log-level",
        "warning",
        "linkage.app:app_from_environment()",
    ]
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            command, env=env, stdout=log, stderr=subprocess.STDOUT, pass_fds=(sock.fileno(),)
        )
    sock.close()
    url = f"http://{host}:{port}"
    try:
        _wait_until_healthy(url, process, log_path, timeout)
    except ConfigError:
        RunningService(url, process, log_path).stop()
        raise
    return RunningService(url, process, log_path, audit_log, service_key)


def _audit_settings(folder: Path, env: dict[str, str]) -> tuple[Path, str]:
    """A fresh service key (encrypted under a random passphrase passed in the environment)
    and the audit log path, set in ``env``; returns the log path and the key's fingerprint."""
    from keys.signing import SigningKey, save_signing_key

    key, passphrase = SigningKey.generate(), secrets.token_urlsafe(24)
    key_path = folder / "service-audit-key.pem"
    key_path.unlink(missing_ok=True)
    save_signing_key(key_path, key, passphrase=passphrase)
    audit_log = folder / "service-audit.jsonl"
    env.update(
        PLACELINK_AUDIT_LOG=str(audit_log),
        PLACELINK_SERVICE_KEY=str(key_path),
        PLACELINK_SERVICE_KEY_PASSPHRASE=passphrase,
    )
    return audit_log, key.fingerprint
