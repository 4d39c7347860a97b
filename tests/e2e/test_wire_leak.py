"""Privacy is tested, not asserted: every byte the gateways send to the linkage service is
recorded and searched for every identifier of the test data, in clear and as unkeyed hashes
(SHA-256 and MD5, raw and hex).

Everything is real: the linkage service is gunicorn on PostgreSQL (PLACELINK_TEST_POSTGRES_URL;
under CI=true a missing PostgreSQL fails the test), and each agency's gateway is its own
``placelink gateway publish`` process, all publishing at once, on loopback over plain HTTP so
that the capture can see. The recorder is a TCP proxy in between. The search first proves it can
see: a planted identifier sent on purpose through the same proxy is found.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from sqlalchemy import create_engine, func, select

from gateway.schema import default_schema_path
from keys import SigningKey, new_secret, save_signing_key, write_secret
from linkage.server import RunningService, start_service
from linkage.tables import RecordRow
from placelink.town import Town, generate_town, write_town
from policies.model import Policy, dump_policy, parse_policy
from tests.conftest import POSTGRES_URL_VARIABLE, _empty_postgres, require
from tests.e2e.wiretap import Wiretap
from tests.oauth_clients import write_oauth_files
from tests.policy_keys import enrolled_document, example_trust

ROOT = Path(__file__).resolve().parents[2]
MIN_CLEAR_LENGTH = 6  # shorter strings turn up by chance in kilobytes of random filter bytes
IDENTIFYING = ("record_id", "given_name", "family_name", "date_of_birth", "postcode", "address",
               "nhs_number")  # fmt: skip


def identifier_values(town: Town) -> set[str]:
    """Every identifying value, canonical and as each agency wrote it. Sex codes ('M', '1')
    and contact dates (not identifiers; a timestamp of today is on the wire) are left out."""
    values = set()
    for agency, rows in town.canonical_rows.items():
        columns = town.mappings[agency]["columns"]
        skip = {columns[c]["column"] for c in ("sex", "event_date") if c in columns}
        for row, raw in zip(rows, town.agency_rows[agency], strict=True):
            values.update(row[c] for c in IDENTIFYING if row.get(c))
            values.update(v for c, v in raw.items() if v and c not in skip)
    return {v for v in values if v.strip()}


def needles(values: set[str]) -> set[bytes]:
    found: set[bytes] = set()
    for value in values:
        forms = {value, value.upper(), value.lower(), value.replace(" ", ""), value.strip()}
        for form in forms:
            data = form.encode("utf-8")
            if len(data) >= MIN_CLEAR_LENGTH:
                found.add(data)
            for algorithm in ("sha256", "md5"):
                digest = hashlib.new(algorithm, data)
                found.update({digest.digest(), digest.hexdigest().encode()})
    return found


def haystack(captured: bytes) -> bytes:
    """The capture plus the decoded form of every base64url header value in it, and of every
    part of every JWT (access tokens, client assertions)."""
    found = re.findall(rb"Placelink-(?:Manifest|Signature): ([A-Za-z0-9_-]+)", captured)
    for jwt in re.findall(rb"[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]+", captured):
        found += jwt.split(b".")
    decoded = [base64.urlsafe_b64decode(m + b"=" * (-len(m) % 4)) for m in found]
    return captured + b"".join(decoded)


def hits(captured: bytes, wanted: set[bytes]) -> list[bytes]:
    space = haystack(captured)
    return [needle for needle in wanted if needle in space]


@dataclass
class Setting:
    town: Town
    out: Path
    service: RunningService
    keys: dict[str, SigningKey]
    policy: Policy
    database_url: str


@pytest.fixture(scope="module")
def setting(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setting]:
    url = os.environ.get(POSTGRES_URL_VARIABLE, "")
    require(bool(url), f"PostgreSQL ({POSTGRES_URL_VARIABLE})")
    _empty_postgres(url)
    out = tmp_path_factory.mktemp("wire")
    town = generate_town(seed=11, people=400)
    write_town(town, out)
    keys = {agency: SigningKey.generate() for agency in town.agency_rows}
    document = enrolled_document(keys, today=dt.date.today())  # signed by every DPO
    dump_policy(document, out / "policy.yaml")
    service = start_service(
        database_url=url, policy_paths=[out / "policy.yaml"],
        schema_paths=[default_schema_path()],
        log_path=out / "service.log",
        trusted_dpo_keys=sorted(example_trust().trusted_dpo_keys),
        **write_oauth_files(out / "oauth", keys).service_kwargs(),
    )  # fmt: skip
    try:
        yield Setting(town, out, service, keys, parse_policy(document), url)
    finally:
        service.stop()
        _empty_postgres(url)


def _gateway_process(setting: Setting, agency: str, service_url: str) -> subprocess.Popen[str]:
    """One agency's node: ``placelink gateway publish`` as its own process (key files on disk,
    the trusted DPO keys from the environment, as an agency would run it)."""
    out, folder = setting.out, setting.out / "nodes" / agency
    folder.mkdir(parents=True, exist_ok=True)
    save_signing_key(folder / "node-signing.pem", setting.keys[agency], passphrase=None,
                     unencrypted_unsafe=True)  # fmt: skip
    env = {**os.environ, "PLACELINK_TRUSTED_DPO_KEYS": ",".join(example_trust().trusted_dpo_keys)}
    command = [
        sys.executable, "-m", "placelink", "gateway", "publish",
        "--policy", str(out / "policy.yaml"), "--secret-file", str(out / "linkage.secret"),
        "--node-key", str(folder / "node-signing.pem"), "--unencrypted-unsafe",
        "--source", agency, "--input", str(out / "agencies" / f"{agency}.csv"),
        "--mapping", str(out / "agencies" / f"{agency}.mapping.yaml"),
        "--state", str(folder / "state"), "--service", service_url,
    ]  # fmt: skip
    return subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def _stored_records(url: str) -> int:
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            return int(connection.scalar(select(func.count()).select_from(RecordRow)) or 0)
    finally:
        engine.dispose()


def test_no_identifier_crosses_the_wire(setting: Setting) -> None:
    town, out = setting.town, setting.out
    write_secret(new_secret(), out / "linkage.secret", passphrase=None, unencrypted_unsafe=True)
    tap = Wiretap(upstream=_host_port(setting.service.url)).start()
    try:
        nodes = {agency: _gateway_process(setting, agency, tap.url) for agency in town.agency_rows}
        outcomes = {agency: node.communicate(timeout=240) for agency, node in nodes.items()}
    finally:
        tap.stop()
    assert len(nodes) >= 3
    for agency, node in nodes.items():
        assert node.returncode == 0, (agency, outcomes[agency])
        assert f"published {len(town.agency_rows[agency])} records" in outcomes[agency][0]
    assert _stored_records(setting.database_url) == sum(map(len, town.agency_rows.values()))
    wanted = needles(identifier_values(town))
    assert len(tap.captured) > 100_000, "the capture saw too little traffic to mean anything"
    assert b"/v1/oauth/token" in tap.captured and b"Bearer " in tap.captured
    assert hits(bytes(tap.captured), wanted) == []


def test_the_capture_can_see_a_planted_identifier(setting: Setting) -> None:
    planted = setting.town.canonical_rows["health"][0]["nhs_number"]
    tap = Wiretap(upstream=_host_port(setting.service.url)).start()
    try:
        requests.post(f"{tap.url}/v1/batches", data=f"marker {planted}".encode(), timeout=10)
        hashed = hashlib.sha256(planted.encode()).hexdigest()
        requests.get(f"{tap.url}/healthz", headers={"X-Probe": hashed}, timeout=10)
    finally:
        tap.stop()
    found = hits(bytes(tap.captured), needles({planted}))
    assert planted.encode() in found
    assert hashlib.sha256(planted.encode()).hexdigest().encode() in found


def _host_port(url: str) -> tuple[str, int]:
    host, port = url.removeprefix("http://").split(":")
    return host, int(port)
