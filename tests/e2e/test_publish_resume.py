"""A gateway node killed mid-publication resumes it: real ``placelink gateway publish``
processes killed with SIGKILL, against the real linkage service (gunicorn on loopback).

Faults: (a) the publish process killed by the test mid-upload, once the service holds some of
its chunks (the service on SQLite, and on PostgreSQL); (b) the process killing itself
(PLACELINK_FAULT_INJECTION_UNSAFE, gateway/faults.py) after the pending publication was saved,
after the service's commit (before the pseudonym map was promoted) and after the map was
promoted (before the pending files were removed); (c) a pending batch the service refuses for
good (its policy version superseded); (d) what the pending files hold and who may read them;
(e) an unreachable service; (f) a pending batch too old to open. In every case each record is
stored once, under the pseudonym drawn for it first. The node API's POST /v1/publications runs
the same code and finishes what a killed CLI left.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
from sqlalchemy import create_engine, select

import gateway.submit as submit
from gateway.faults import FAULT_VARIABLE, POINTS
from gateway.node import NodeConfig, publish
from gateway.pending import PendingRefused, find_pending, pending_folder
from gateway.pseudonyms import PseudonymMap
from gateway.schema import default_schema, default_schema_path
from gateway.submit import CHUNK_VARIABLE, ServiceUnreachable, b64
from linkage.server import RunningService, start_service
from linkage.tables import BatchRow, RecordRow
from policies.canonical import canonical_json
from policies.model import dump_policy, load_policy
from tests.conftest import POSTGRES_URL_VARIABLE, _empty_postgres, require
from tests.node_world import NodeWorld, build_node_world, start_node_api
from tests.oauth_clients import credentials, gateway_client_id, write_oauth_files
from tests.policy_keys import enrolled_document, example_dpo_keys, example_trust, sign_document

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]
PEOPLE = 3000  # ~400 police records, ~100 KB: ~100 chunks of CHUNK bytes
CHUNK = 1024
SOURCE = "police"


@dataclass
class Setting:
    world: NodeWorld
    service: RunningService
    database_url: str

    @property
    def policy_path(self) -> Path:
        return self.world.policy_path


def serve(world: NodeWorld, database_url: str, policy: Path, name: str) -> RunningService:
    return start_service(
        database_url=database_url, policy_paths=[policy],
        schema_paths=[default_schema_path()], log_path=world.folder / f"{name}.log",
        trusted_dpo_keys=sorted(example_trust().trusted_dpo_keys),
        **write_oauth_files(world.folder / "oauth", world.node_keys).service_kwargs(),
    )  # fmt: skip


@pytest.fixture(scope="module")
def setting(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setting]:
    folder = tmp_path_factory.mktemp("resume")
    world = build_node_world(folder, source=SOURCE, people=PEOPLE)
    database_url = f"sqlite:///{folder / 'linkage.db'}"
    service = serve(world, database_url, world.policy_path, "service")
    world.env["PLACELINK_NODE_SERVICE_URL"] = service.url
    try:
        yield Setting(world, service, database_url)
    finally:
        service.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def any_store(request: pytest.FixtureRequest, setting: Setting) -> Iterator[Setting]:
    """The module's service (SQLite), or one on the test PostgreSQL (emptied before and after;
    under CI=true a missing PostgreSQL fails the test)."""
    if request.param == "sqlite":
        yield setting
        return
    url = os.environ.get(POSTGRES_URL_VARIABLE, "")
    require(bool(url), f"PostgreSQL ({POSTGRES_URL_VARIABLE})")
    _empty_postgres(url)
    service = serve(setting.world, url, setting.world.policy_path, "postgresql")
    try:
        yield Setting(setting.world, service, url)
    finally:
        service.stop()
        _empty_postgres(url)


def command(
    setting: Setting, state: Path, *extra: str, service: str = "", policy: Path | None = None
) -> list[str]:
    env, world = setting.world.env, setting.world
    return [
        sys.executable, "-m", "placelink", "gateway", "publish",
        "--policy", str(policy or world.policy_path),
        "--secret-file", env["PLACELINK_NODE_SECRET_FILE"],
        "--node-key", env["PLACELINK_NODE_KEY_FILE"],
        "--source", SOURCE, "--input", env["PLACELINK_NODE_INPUT"],
        "--mapping", env["PLACELINK_NODE_MAPPING"], "--state", str(state),
        "--service", service or setting.service.url, *extra,
    ]  # fmt: skip


def environment(setting: Setting, fault: str = "", chunk: int = 0) -> dict[str, str]:
    env = os.environ | setting.world.env
    env.pop(FAULT_VARIABLE, None)
    env.pop(CHUNK_VARIABLE, None)
    if chunk:
        env[CHUNK_VARIABLE] = str(chunk)
    if fault:
        assert fault in POINTS
        env[FAULT_VARIABLE] = fault
    return env


def run_publish(
    setting: Setting, state: Path, *extra: str, fault: str = "", chunk: int = 0, **kwargs: Any
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command(setting, state, *extra, **kwargs),
                          env=environment(setting, fault, chunk), capture_output=True, text=True,
                          timeout=120, check=False)  # fmt: skip


def stored(database_url: str) -> list[tuple[str, str]]:
    """(pseudonym, batch id) of every police record the service holds."""
    engine = create_engine(database_url)
    try:
        with engine.connect() as connection:
            rows = connection.execute(
                select(RecordRow.pseudonym, RecordRow.batch_id).where(RecordRow.source == SOURCE)
            ).all()
            return [(p, b) for p, b in rows]
    finally:
        engine.dispose()


def batches(database_url: str) -> list[tuple[Any, ...]]:
    engine = create_engine(database_url)
    try:
        with engine.connect() as connection:
            return list(connection.execute(select(BatchRow.batch_id, BatchRow.body_sha256)
                                           .order_by(BatchRow.batch_id)).all())  # fmt: skip
    finally:
        engine.dispose()


def pending_pseudonyms(state: Path) -> set[str]:
    the_map = PseudonymMap.load(pending_folder(state, SOURCE) / "pseudonyms.csv")
    return set(the_map.by_record.values())


def map_pseudonyms(state: Path) -> set[str]:
    return set(PseudonymMap.load(state / f"{SOURCE}.ids").by_record.values())


def extract_ids(setting: Setting) -> set[str]:
    return {row["ref"] for row in setting.world.town.agency_rows[SOURCE]}


def assert_stored_once(setting: Setting, before: list[tuple[str, str]], expected: set[str]) -> None:
    """Since ``before``, every expected pseudonym stored once, and nothing else."""
    new = [p for p in stored(setting.database_url) if p not in before]
    assert len(new) == len(expected) == len(extract_ids(setting))
    assert {p for p, _ in new} == expected  # each pseudonym once: no duplicates
    assert len({b for _, b in new}) == 1  # in one batch


def last_log_entry(state: Path) -> dict[str, Any]:
    lines = (state / "publications.jsonl").read_text(encoding="utf-8").splitlines()
    entry: dict[str, Any] = json.loads(lines[-1])
    return entry


def upload_offset(setting: Setting, state: Path) -> int:
    """The offset the service holds for the pending batch's upload (-1: none yet)."""
    try:
        index = json.loads((pending_folder(state, SOURCE) / "pending.json").read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return -1
    url = setting.service.url
    headers = credentials(url, gateway_client_id(SOURCE), setting.world.node_keys[SOURCE]).headers()
    headers["Placelink-Signature"] = b64(base64.b64decode(index["signature"]))
    answer = requests.get(f"{url}/v1/uploads/{index['batch_id']}", headers=headers, timeout=10)
    return int(answer.json()["offset"]) if answer.status_code == 200 else -1


def test_a_publish_killed_mid_upload_is_resumed(any_store: Setting, tmp_path: Path) -> None:
    """(a) SIGKILL from outside once the service holds a few chunks; the rerun resumes the
    same batch from the service's offset."""
    setting = any_store
    state, before = tmp_path / "state", stored(setting.database_url)
    process = subprocess.Popen(command(setting, state), env=environment(setting, chunk=CHUNK),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
    deadline, offset = time.monotonic() + 60, -1
    while time.monotonic() < deadline and process.poll() is None and offset < 4 * CHUNK:
        offset = upload_offset(setting, state)
        time.sleep(0.01)
    process.kill()
    process.communicate(timeout=30)
    assert process.returncode == -9, "the publication ended before it could be killed"
    held = upload_offset(setting, state)
    size = (pending_folder(state, SOURCE) / "batch.clks").stat().st_size
    assert 4 * CHUNK <= held < size
    pending = pending_pseudonyms(state)
    batch_id = find_pending(state, SOURCE)
    assert batch_id is not None and [p for p in stored(setting.database_url) if p not in before
                                     ] == []  # fmt: skip
    started = time.monotonic()
    rerun = run_publish(setting, state, chunk=CHUNK)
    resumed_in = time.monotonic() - started
    assert rerun.returncode == 0, rerun.stderr
    assert "resumed the pending publication" in rerun.stdout
    assert f"resuming the pending publication (batch {batch_id.batch_id}" in rerun.stderr
    assert_stored_once(setting, before, pending)
    assert map_pseudonyms(state) == pending and not pending_folder(state, SOURCE).exists()
    entry = last_log_entry(state)
    assert entry["outcome"] == "resumed" and entry["pending"] == "resumed"
    assert entry["batch_id"] == batch_id.batch_id
    assert entry["service_response"]["already_stored"] is False
    print(f"\nkilled at offset {held}; resumed in {resumed_in:.2f} s; "
          f"{len(pending)} records stored once")  # fmt: skip


@pytest.mark.parametrize("point", ["after-pending-saved", "after-commit", "after-promote"])
def test_a_publish_killed_at_each_step_is_finished_once(
    setting: Setting, tmp_path: Path, point: str
) -> None:
    """(b) the process kills itself at a named step; the rerun finishes that publication:
    stored once (already stored, where the service had committed), the map promoted."""
    state, before = tmp_path / "state", stored(setting.database_url)
    killed = run_publish(setting, state, fault=point)
    assert killed.returncode == -9, killed.stderr
    pending = find_pending(state, SOURCE)
    assert pending is not None
    drawn = pending_pseudonyms(state) if point != "after-promote" else map_pseudonyms(state)
    committed = point != "after-pending-saved"
    assert len(stored(setting.database_url)) - len(before) == (len(drawn) if committed else 0)
    if point == "after-pending-saved":
        assert_private(setting, state)
    started = time.monotonic()
    rerun = run_publish(setting, state)
    assert rerun.returncode == 0, rerun.stderr
    print(f"\n{point}: finished by the rerun in {time.monotonic() - started:.2f} s")
    assert_stored_once(setting, before, drawn)
    assert map_pseudonyms(state) == drawn and not pending_folder(state, SOURCE).exists()
    entry = last_log_entry(state)
    assert entry["outcome"] == "resumed" and entry["batch_id"] == pending.batch_id
    assert entry["service_response"]["already_stored"] is committed
    if point == "after-commit":  # then an ordinary publication: the same pseudonyms again
        again = run_publish(setting, state)
        assert again.returncode == 0 and last_log_entry(state)["outcome"] == "published"
        assert map_pseudonyms(state) == drawn


def assert_private(setting: Setting, state: Path) -> None:
    """(d) 0600 files in a 0700 folder; no identifier beyond the map's record IDs."""
    folder = pending_folder(state, SOURCE)
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    names = sorted(p.name for p in folder.iterdir())
    assert names == ["batch.clks", "pending.json", "pseudonyms.csv"]  # no temporary left over
    assert {stat.S_IMODE((folder / n).stat().st_mode) for n in names} == {0o600}
    rows = setting.world.town.agency_rows[SOURCE]
    values = {v for row in rows for k, v in row.items() if k != "ref" and len(v) > 3}
    ids = extract_ids(setting)
    for name in ("batch.clks", "pending.json"):
        text = (folder / name).read_bytes().decode("latin-1")
        assert [v for v in values | ids if v in text] == [], name
    the_map = PseudonymMap.load(folder / "pseudonyms.csv")
    assert set(the_map.by_record) == ids  # the map's record IDs, nothing else
    text = (folder / "pseudonyms.csv").read_text()
    assert [v for v in values if v in text] == []
    index = json.loads((folder / "pending.json").read_text())
    assert [p for p in the_map.by_record.values() if p in json.dumps(index)] == []


def _superseding_policy(setting: Setting) -> Path:
    """The same policy as a new version, signed by the DPOs."""
    document = enrolled_document(setting.world.node_keys, today=dt.date.today())
    document["version"] = f"{document['version']}.1"
    path = setting.world.folder / "policy-v2.yaml"
    dump_policy(sign_document(document, example_dpo_keys().values()), path)
    return path


def test_a_refused_pending_publication_stops_with_the_fix(setting: Setting, tmp_path: Path) -> None:
    """(c) killed after the commit; then the service holds a newer version of the policy
    only (a second service on the same database): the pending batch is refused, nothing
    changes, and --discard-pending publishes afresh with the same pseudonyms."""
    state, world, url = tmp_path / "state", setting.world, setting.database_url
    before = stored(url)
    assert run_publish(setting, state, fault="after-commit").returncode == -9
    drawn = pending_pseudonyms(state)
    newer = _superseding_policy(setting)
    with pytest.raises(PendingRefused, match="another version of the policy"):
        _publish_here(setting, state, setting.service.url, policy=newer)  # checked locally
    second = serve(world, url, newer, "superseded")
    try:
        held = {p.name: p.read_bytes() for p in pending_folder(state, SOURCE).iterdir()}
        rows, kept = stored(url), batches(url)
        refused = run_publish(setting, state, service=second.url)
        assert refused.returncode == 1
        assert "cannot be resumed" in refused.stderr and "--discard-pending" in refused.stderr
        assert stored(url) == rows and batches(url) == kept  # stored data unchanged
        assert {p.name: p.read_bytes() for p in pending_folder(state, SOURCE).iterdir()} == held
        entry = last_log_entry(state)
        assert entry["outcome"] == "failed" and entry["error"]["kind"] == "PendingRefused"
        dropped = run_publish(setting, state, "--discard-pending", service=second.url,
                              policy=newer)  # fmt: skip
        assert dropped.returncode == 0, dropped.stderr
        assert "dropped the pending publication (discarded)" in dropped.stderr
    finally:
        second.stop()
    fresh = [p for p in stored(url) if p not in before]
    assert len(fresh) == 2 * len(drawn)  # the batch stored before the kill, and the new one
    assert {p for p, _ in fresh} == drawn  # the same pseudonyms: kept, never re-drawn
    assert map_pseudonyms(state) == drawn and last_log_entry(state)["pending"] == "discarded"


def test_the_node_api_resumes_a_pending_publication(setting: Setting, tmp_path: Path) -> None:
    """POST /v1/publications runs the same code: it finishes the batch a killed CLI left."""
    world, before = setting.world, stored(setting.database_url)
    assert run_publish(setting, world.state_dir, fault="after-commit").returncode == -9
    drawn = pending_pseudonyms(world.state_dir)
    node = start_node_api(world, tmp_path / "node.log", workers=1)
    operator = {"Authorization": f"Bearer {world.operator_token}"}
    try:
        answer = requests.post(f"{node.url}/v1/publications", headers=operator, timeout=60)
    finally:
        node.stop()
    assert answer.status_code == 201, answer.text
    body = answer.json()
    assert body["outcome"] == "resumed" and body["trigger"] == "api"
    assert body["service_response"]["already_stored"] is True
    assert_stored_once(setting, before, drawn)
    assert map_pseudonyms(world.state_dir) == drawn


def _config(setting: Setting, state: Path, url: str) -> NodeConfig:
    env = setting.world.env
    return NodeConfig(SOURCE, Path(env["PLACELINK_NODE_INPUT"]),
                      Path(env["PLACELINK_NODE_MAPPING"]), state, url)  # fmt: skip


def _publish_here(setting: Setting, state: Path, url: str, policy: Path | None = None) -> Any:
    world, key = setting.world, setting.world.node_keys[SOURCE]
    auth = credentials(setting.service.url, gateway_client_id(SOURCE), key).headers
    return publish(_config(setting, state, url), policy=load_policy(policy or world.policy_path),
                   schema=default_schema(), secret=world.secret, node_key=key,
                   trust=example_trust(), today=dt.date.today(), auth=auth)  # fmt: skip


def test_an_unreachable_service_leaves_the_publication_pending(
    setting: Setting, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """(e) transient: nothing listens; the batch stays pending and is resumed later."""
    monkeypatch.setattr(submit, "BACKOFF_SECONDS", 0.01)
    state, before = tmp_path / "state", stored(setting.database_url)
    with pytest.raises(ServiceUnreachable, match="stays pending"):
        _publish_here(setting, state, "http://127.0.0.1:9")
    pending = find_pending(state, SOURCE)
    assert pending is not None and not (state / f"{SOURCE}.ids").exists()
    drawn = pending_pseudonyms(state)
    publication = _publish_here(setting, state, setting.service.url)
    assert publication.pending == "resumed" and publication.batch_id == pending.batch_id
    assert_stored_once(setting, before, drawn)


def test_a_pending_batch_too_old_to_open_is_published_afresh_with_its_pseudonyms(
    setting: Setting, tmp_path: Path
) -> None:
    """(f) the service never received it and now calls it stale: it is dropped, its
    pseudonyms kept, and the extract published under a new batch id."""
    state, before = tmp_path / "state", stored(setting.database_url)
    assert run_publish(setting, state, fault="after-pending-saved").returncode == -9
    index_path = pending_folder(state, SOURCE) / "pending.json"
    index = json.loads(index_path.read_text())
    old = dt.datetime.now(dt.UTC) - dt.timedelta(hours=3)
    index["manifest"]["created_at"] = old.isoformat(timespec="seconds")  # as if 3 hours ago
    signature = setting.world.node_keys[SOURCE].sign(canonical_json(index["manifest"]))
    index["signature"] = base64.b64encode(signature).decode()
    index_path.write_text(json.dumps(index))
    drawn = pending_pseudonyms(state)
    rerun = run_publish(setting, state)
    assert rerun.returncode == 0, rerun.stderr
    assert "dropped the pending publication (expired)" in rerun.stderr
    assert_stored_once(setting, before, drawn)
    entry = last_log_entry(state)
    assert entry["outcome"] == "published" and entry["pending"] == "expired"
    assert entry["batch_id"] != index["batch_id"] and map_pseudonyms(state) == drawn


def test_the_fault_and_chunk_settings_are_documented() -> None:
    text = (ROOT / "docs" / "agency-it.md").read_text(encoding="utf-8")
    assert f"`{FAULT_VARIABLE}`" in text and f"`{CHUNK_VARIABLE}`" in text
    assert "--discard-pending" in text
