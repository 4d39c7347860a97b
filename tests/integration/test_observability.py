"""The linkage service's logs, metrics and readiness under real gunicorn (deploy/gunicorn.conf.py,
two workers): a real upload, link run and hot-spot flow, then

- the captured log is JSON lines with whitelisted fields only, and holds none of the test
  data's identifiers (clear, upper/lower case, unkeyed hashes), no bearer token (nor its
  SHA-256), and none of the encodings that crossed the wire (base64 manifests and signatures,
  base64 and hex slices of the .clks bodies); it proves it sees: every request id the service
  sent back is in it, with the route template and the caller's digest;
- /metrics, scraped from whichever worker answers, counts what both workers did.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from gateway.node import NodeConfig, publish
from gateway.schema import default_schema, default_schema_path
from keys import SigningKey, new_secret
from placelink.town import Town, generate_town, write_town
from policies.log_lines import FIELDS
from policies.model import dump_policy, parse_policy
from tests.e2e.test_wire_leak import identifier_values, needles
from tests.e2e.wiretap import Wiretap
from tests.oauth_clients import credentials, gateway_client_id, write_oauth_files
from tests.policy_keys import enrolled_document, example_trust

ROOT = Path(__file__).resolve().parents[2]
TOKENS: dict[str, str] = {}  # the analyst's real access token, once the flow has run
METRICS_TOKEN = "metrics-token-for-the-log-test-41b0"
POLICY = "seabrook-task-force"
HEALTH_PROBES = 20


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass
class Flow:
    town: Town
    log: bytes
    captured: bytes
    request_ids: list[str]
    metrics: list[str]
    ready: requests.Response


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _wait_ready(url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and process.poll() is None:
        try:
            if requests.get(f"{url}/readyz", timeout=1).ok:
                return
        except requests.RequestException:
            time.sleep(0.2)
    raise AssertionError("the service did not become ready")


@pytest.fixture(scope="module")
def flow(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Flow]:
    out = tmp_path_factory.mktemp("observe")
    town = generate_town(seed=5, people=150)
    write_town(town, out)
    keys = {agency: SigningKey.generate() for agency in town.agency_rows}
    document = enrolled_document(keys, today=dt.date.today())
    dump_policy(document, out / "policy.yaml")
    port = _free_port()
    env = dict(os.environ)
    env.pop("PLACELINK_ALLOW_UNSIGNED_POLICIES_UNSAFE", None)
    env.update(
        PLACELINK_BIND=f"127.0.0.1:{port}", PLACELINK_WORKERS="2",
        PLACELINK_DATABASE_URL=f"sqlite:///{out / 'db.sqlite'}",
        PLACELINK_POLICIES=str(out / "policy.yaml"),
        PLACELINK_SCHEMAS=str(default_schema_path()),
        PLACELINK_METRICS_TOKEN_SHA256=_sha(METRICS_TOKEN),
        PLACELINK_TRUSTED_DPO_KEYS=",".join(sorted(example_trust().trusted_dpo_keys)),
        PROMETHEUS_MULTIPROC_DIR=str(out / "metrics"),
    )  # fmt: skip
    oauth = write_oauth_files(out / "oauth", keys)
    env.update(
        PLACELINK_CLIENTS=str(oauth.clients),
        PLACELINK_OAUTH_SIGNING_KEY=str(oauth.signing_key),
        PLACELINK_OAUTH_KEY_UNENCRYPTED_UNSAFE="1",
    )
    log_path = out / "service.log"
    command = [sys.executable, "-m", "gunicorn", "-c", str(ROOT / "deploy" / "gunicorn.conf.py"),
               "linkage.app:app_from_environment()"]  # fmt: skip
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, env=env, cwd=out, stdout=log, stderr=log)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(url, process)
        yield _run_flow(town, out, url, keys, document, log_path)
    finally:
        process.terminate()
        process.wait(timeout=30)


def _run_flow(
    town: Town, out: Path, url: str, keys: dict[str, SigningKey], document: dict[str, object],
    log_path: Path,
) -> Flow:  # fmt: skip
    tap = Wiretap(upstream=("127.0.0.1", int(url.rsplit(":", 1)[1]))).start()
    auth = credentials(url, "analyst").headers()
    TOKENS["analyst"] = auth["Authorization"].removeprefix("Bearer ")
    admin = credentials(url, "admin").headers()
    ids: list[str] = []
    try:
        secret, policy = new_secret(), parse_policy(document)
        for agency in town.agency_rows:
            config = NodeConfig(agency, out / "agencies" / f"{agency}.csv",
                                out / "agencies" / f"{agency}.mapping.yaml", out / "state",
                                tap.url)  # fmt: skip
            gateway = credentials(tap.url, gateway_client_id(agency), keys[agency])
            publish(config, policy=policy, schema=default_schema(), secret=secret,
                    node_key=keys[agency], trust=example_trust(), auth=gateway.headers)  # fmt: skip
        refused = requests.post(f"{tap.url}/v1/batches", data=b"not a batch", timeout=10,
                                headers=credentials(url, "police-secret").headers())  # fmt: skip
        run = requests.post(f"{url}/v1/policies/{POLICY}/link-runs", headers=admin, timeout=300)
        query = requests.post(f"{url}/v1/policies/{POLICY}/hotspots?format=json", headers=auth,
                              json={"by": "area"}, timeout=60)  # fmt: skip
        for answer in (refused, run, query):
            ids.append(answer.headers["X-Request-Id"])
        assert (refused.status_code, run.status_code, query.status_code) == (422, 201, 200)
        for _ in range(HEALTH_PROBES):  # fresh connections: both workers get some
            ids.append(requests.get(f"{url}/healthz", timeout=5).headers["X-Request-Id"])
        scrape = {"Authorization": f"Bearer {METRICS_TOKEN}"}
        metrics = [requests.get(f"{url}/metrics", headers=scrape, timeout=5).text for _ in range(6)]
        ready = requests.get(f"{url}/readyz", timeout=5)
    finally:
        tap.stop()
    time.sleep(0.5)  # let the last lines reach the log
    return Flow(town, log_path.read_bytes(), bytes(tap.captured), ids, metrics, ready)


def _encodings(captured: bytes) -> set[bytes]:
    """What crossed the wire encoded: header values, and slices of every body in base64,
    base64url and hex (a log that quoted a body or a pseudonym would hold one of them)."""
    found = set(re.findall(rb"Placelink-(?:Manifest|Signature): ([A-Za-z0-9_=-]{16,})", captured))
    for body in captured.split(b"\r\n\r\n")[1:]:
        for start in range(0, max(len(body) - 24, 0), 97):
            piece = body[start : start + 24]
            found |= {base64.b64encode(piece), base64.urlsafe_b64encode(piece)}
            found.add(piece.hex().encode())
    return found


def _lines(log: bytes) -> list[dict[str, object]]:
    return [json.loads(line) for line in log.decode().splitlines() if line.strip()]


def test_every_log_line_is_json_with_whitelisted_fields(flow: Flow) -> None:
    allowed = {"ts", "level", "logger", "pid", "message", "error", "detail", "frames", *FIELDS}
    lines = _lines(flow.log)  # raises if any line is not JSON
    assert lines
    assert all(set(line) <= allowed for line in lines)


def test_the_log_sees_every_request(flow: Flow) -> None:
    requests_seen = {line["request_id"]: line for line in _lines(flow.log) if "request_id" in line}
    assert set(flow.request_ids) <= set(requests_seen)
    query = requests_seen[flow.request_ids[2]]
    assert query["route"] == "/v1/policies/<policy_id>/hotspots"
    token = TOKENS["analyst"]
    digest_of_digest = hashlib.sha256(hashlib.sha256(token.encode()).digest()).hexdigest()
    assert query["caller"] == digest_of_digest[:16]
    # Both workers answered requests (so the metrics test below sees two processes' samples).
    assert len({line["pid"] for line in requests_seen.values()}) == 2


def test_no_identifier_token_or_encoding_reaches_the_log(flow: Flow) -> None:
    wanted = needles(identifier_values(flow.town))
    token = TOKENS["analyst"]
    wanted |= {token.encode(), METRICS_TOKEN.encode(), _sha(token).encode(),
               base64.b64encode(token.encode())}  # fmt: skip
    encodings = _encodings(flow.captured)
    assert len(encodings) > 500, "too few encodings captured to mean anything"
    assert len(flow.log) > 5_000, "the log is too short to mean anything"
    # The search can see: the same needles are found in what crossed the wire.
    assert any(e in flow.captured for e in encodings)
    assert [n for n in wanted | encodings if n in flow.log] == []


def test_metrics_count_what_both_workers_did(flow: Flow) -> None:
    uploads = len(flow.town.agency_rows)
    records = sum(len(rows) for rows in flow.town.canonical_rows.values())
    for text in flow.metrics:  # each scrape, whichever worker answered it
        assert _sample(text, 'placelink_http_requests_total{method="GET",route="/healthz",'
                             'service="linkage",status="200"}') == HEALTH_PROBES  # fmt: skip
        assert _sample(text, 'placelink_uploads_total{outcome="accepted"}') == uploads
        assert _sample(text, 'placelink_uploads_total{outcome="invalid-input"}') == 1
        assert _sample(text, "placelink_records_stored_total") == records
        assert _sample(text, 'placelink_link_runs_total{outcome="ok"}') == 1
        assert _sample(text, "placelink_link_run_duration_seconds_count") == 1
        assert _sample(text, 'placelink_hotspot_queries_total{decision="answered"}') == 1


def test_readiness_reports_each_check(flow: Flow) -> None:
    assert flow.ready.status_code == 200
    assert flow.ready.json() == {
        "status": "ready",
        "checks": {"database": "ok", "migrations": "ok", "policies": "ok"},
    }


def _sample(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"no sample {name}")
