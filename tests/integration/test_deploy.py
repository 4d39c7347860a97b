"""deploy/ names real things: the gunicorn config serves the linkage app as documented."""

from __future__ import annotations

import datetime as dt
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests

from policies.model import dump_policy
from tests.policy_keys import enrolled_document, example_trust

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_gunicorn_config_serves_the_documented_entry_point(tmp_path: Path) -> None:
    port = _free_port()
    policy_path = tmp_path / "policy.yaml"  # the signed example, dated around today
    dump_policy(enrolled_document({}, today=dt.date.today()), policy_path)
    env = dict(os.environ)
    env.update(
        PLACELINK_BIND=f"127.0.0.1:{port}",
        PLACELINK_WORKERS="1",
        PLACELINK_DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite'}",
        PLACELINK_POLICIES=str(policy_path),
        PLACELINK_TRUSTED_DPO_KEYS=",".join(sorted(example_trust().trusted_dpo_keys)),
    )
    env.pop("PLACELINK_ALLOW_UNSIGNED_POLICIES_UNSAFE", None)
    command = [sys.executable, "-m", "gunicorn", "-c", str(ROOT / "deploy" / "gunicorn.conf.py"),
               "linkage.app:app_from_environment()"]  # fmt: skip
    process = subprocess.Popen(command, env=env, cwd=tmp_path, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT)  # fmt: skip
    try:
        deadline, answer = time.monotonic() + 30, None
        while time.monotonic() < deadline and answer is None:
            try:
                answer = requests.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
            except requests.RequestException:
                time.sleep(0.2)
        assert answer is not None and answer.json() == {"status": "ok"}
        denied = requests.post(f"http://127.0.0.1:{port}/v1/policies/x/link-runs", timeout=5)
        assert denied.status_code == 401 and denied.headers["WWW-Authenticate"]  # no token
        assert denied.headers["Content-Type"] == "application/problem+json"
    finally:
        process.terminate()
        process.wait(timeout=10)
