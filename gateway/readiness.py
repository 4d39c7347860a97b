"""Is a gateway node ready to publish? The checks behind the node API's ``GET /readyz``.

Each check answers ``None`` (ready) or the error's message (it never carries a key or value;
the API shows only the check's name and ``ok`` or ``failed``, the message goes to the log):
the policy loads and is trusted and in force today; the key files, the extract and the
mapping are readable; the state folder is writable; the linkage service answers ``/healthz``.
Key files are only checked for readability here; they are opened (and decrypted) at start-up
and for each publication, not on every probe.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Callable
from pathlib import Path

import requests

from gateway.node_settings import NodeSettings, load_policy_for
from keys.errors import PlacelinkError

PROBE_TIMEOUT_SECONDS = 2.0


def _readable(path: Path, what: str) -> str | None:
    if path.is_file() and os.access(path, os.R_OK):
        return None
    return f"the {what} file {path} is missing or unreadable"


def _writable_folder(path: Path) -> str | None:
    folder = path if path.exists() else path.parent
    if folder.is_dir() and os.access(folder, os.W_OK | os.X_OK):
        return None
    return f"the state folder {path} is not writable"


def _service_answers(url: str) -> str | None:
    try:
        response = requests.get(f"{url.rstrip('/')}/healthz", timeout=PROBE_TIMEOUT_SECONDS)
    except requests.RequestException as exc:
        return f"the linkage service at {url} is unreachable ({type(exc).__name__})"
    return None if response.ok else f"the linkage service answered {response.status_code}"


def _policy_trusted(settings: NodeSettings, today: dt.date) -> str | None:
    try:
        load_policy_for(settings, today=today)
    except PlacelinkError as exc:
        return exc.message
    return None


def readiness_checks(settings: NodeSettings, *, today: dt.date) -> dict[str, str | None]:
    """Check name -> None when it passes, else why it fails."""
    node = settings.node
    checks: dict[str, Callable[[], str | None]] = {
        "policy": lambda: _policy_trusted(settings, today),
        "linkage_secret": lambda: _readable(settings.secret_file, "linkage secret"),
        "node_key": lambda: _readable(settings.node_key_file, "node key"),
        "input": lambda: _readable(node.input_csv, "extract"),
        "mapping": lambda: _readable(node.mapping, "column mapping"),
        "state_dir": lambda: _writable_folder(node.state_dir),
        "linkage_service": lambda: _service_answers(node.service_url),
    }
    return {name: check() for name, check in checks.items()}
