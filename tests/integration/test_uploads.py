"""Resumable uploads against the real linkage service (gunicorn on loopback; SQLite, and
PostgreSQL where the ``database_url`` fixture gives it): chunks, a real dropped connection
and its resumption, idempotent resends, racing duplicates, and refusals that leave every
table exactly as it was."""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import hashlib
import os
import socket
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests
from sqlalchemy import create_engine, select

from gateway.pipeline import context_for_policy, encode_csv
from gateway.pseudonyms import PseudonymMap
from gateway.schema import default_schema, default_schema_path
from gateway.submit import CLKS_MEDIA_TYPE, Submission, prepare_submission, upload
from keys import SigningKey, new_secret
from keys.errors import AccessError, InputError
from linkage.server import RunningService, start_service
from linkage.storage import Store
from linkage.tables import BatchRow, BodyChunkRow, RecordRow, UploadRow
from placelink.town import generate_town, write_canonical_csv
from policies.clks import EncodedBatch, load_clks
from policies.model import Policy, dump_policy, parse_policy
from tests.conftest import POSTGRES_URL_VARIABLE, _empty_postgres, require
from tests.oauth_clients import credentials, gateway_client_id, write_oauth_files
from tests.policy_keys import enrolled_document, example_trust
from tests.unit.test_linkage_service import with_extra_attribute

AGENCIES = ("police", "health")
CHUNK = 1024  # small chunks, so that a modest batch travels in many


@dataclass(frozen=True)
class World:
    folder: Path
    policy: Policy
    keys: dict[str, SigningKey]
    batches: dict[str, EncodedBatch]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    folder = tmp_path_factory.mktemp("uploads")
    keys = {agency: SigningKey.generate() for agency in AGENCIES}
    document = enrolled_document(keys, today=dt.date.today())
    dump_policy(document, folder / "policy.yaml")
    policy = parse_policy(document)
    context = context_for_policy(policy, default_schema(), epoch=0, today=dt.date.today())
    town, secret, batches = generate_town(seed=3, people=250), new_secret(), {}
    for agency in AGENCIES:
        write_canonical_csv(town.canonical_rows[agency], folder / f"{agency}.csv")
        batches[agency] = encode_csv(
            folder / f"{agency}.csv", secret=secret, context=context, pseudonyms=PseudonymMap()
        ).batch
    return World(folder, policy, keys, batches)


def serve(world: World, database_url: str, name: str) -> RunningService:
    return start_service(
        database_url=database_url, policy_paths=[world.folder / "policy.yaml"],
        schema_paths=[default_schema_path()],
        log_path=world.folder / f"{name}.log",
        **write_oauth_files(world.folder / "oauth", world.keys).service_kwargs(),
        trusted_dpo_keys=sorted(example_trust().trusted_dpo_keys),
    )  # fmt: skip


@dataclass(frozen=True)
class Served:
    url: str
    database_url: str


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def served(world: World, request: pytest.FixtureRequest) -> Iterator[Served]:
    """One service per store for the module (SQLite; PostgreSQL as tests/conftest.py gives)."""
    url = f"sqlite:///{world.folder / 'linkage.db'}"
    if request.param == "postgresql":
        url = os.environ.get(POSTGRES_URL_VARIABLE, "")
        require(bool(url), f"PostgreSQL ({POSTGRES_URL_VARIABLE})")
        _empty_postgres(url)
    running = serve(world, url, request.param)
    try:
        yield Served(running.url, url)
    finally:
        running.stop()
        if request.param == "postgresql":
            _empty_postgres(url)


def auth(world: World, url: str, agency: str = "police") -> Callable[[], Mapping[str, str]]:
    """The agency gateway's access-token headers (private_key_jwt with its node key)."""
    return credentials(url, gateway_client_id(agency), world.keys[agency]).headers


def signed(world: World, agency: str = "police", **changes: Any) -> Submission:
    batch = world.batches[agency]
    sub = prepare_submission(
        batch, source=agency, policy_hash=world.policy.policy_hash, node_key=world.keys[agency]
    )
    return dataclasses.replace(sub, **changes)


def tables(database_url: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of the upload and batch tables, in a stable order."""
    engine = create_engine(database_url)
    try:
        with engine.connect() as connection:
            return {
                "batches": connection.execute(select(BatchRow.batch_id, BatchRow.body_sha256)
                                              .order_by(BatchRow.batch_id)).all(),
                "records": connection.execute(select(RecordRow.id, RecordRow.pseudonym)
                                              .order_by(RecordRow.id)).all(),
                "uploads": connection.execute(select(UploadRow.batch_id, UploadRow.received)
                                              .order_by(UploadRow.batch_id)).all(),
                "body_chunks": connection.execute(select(BodyChunkRow.batch_id,
                    BodyChunkRow.start).order_by(BodyChunkRow.batch_id, BodyChunkRow.start)).all(),
            }  # fmt: skip
    finally:
        engine.dispose()


def test_a_chunked_upload_round_trips_and_a_resend_changes_nothing(
    world: World, served: Served
) -> None:
    service, database_url = served.url, served.database_url
    sub = signed(world)
    assert len(sub.body) > 8 * CHUNK
    first = upload(sub, service, chunk_bytes=CHUNK, auth=auth(world, service))
    assert first["audit_checkpoint"]["seq"] >= 0  # the service's audit log recorded it
    first.pop("audit_checkpoint")
    assert first == {"batch_id": sub.manifest["batch_id"], "records": len(world.batches["police"]),
                     "already_stored": False}  # fmt: skip
    before = tables(database_url)
    again = upload(sub, service, chunk_bytes=CHUNK, auth=auth(world, service))
    assert {k: again[k] for k in first} == {**first, "already_stored": True}
    assert tables(database_url) == before
    store = Store(database_url)
    try:
        assert store.batch_body(first["batch_id"]) == sub.body
        [(source, batch, ids)] = store.batches(world.policy.policy_id, 0)
        assert source == "police" and len(ids) == len(batch) == len(world.batches["police"])
        assert load_clks(sub.body).attributes == batch.attributes
    finally:
        store.engine.dispose()


def _headers(sub: Submission, token: Mapping[str, str], **extra: str) -> dict[str, str]:
    return {"Placelink-Signature": sub.headers()["Placelink-Signature"], **token, **extra}


def _cut_short(url: str, sub: Submission, token: Mapping[str, str], offset: int, size: int) -> None:
    """A PATCH that declares ``size`` bytes, sends half of them and drops the connection."""
    host, port = url.removeprefix("http://").split(":")
    path = f"/v1/uploads/{sub.manifest['batch_id']}"
    head = [f"PATCH {path} HTTP/1.1", f"Host: {host}", f"Content-Type: {CLKS_MEDIA_TYPE}",
            f"Content-Length: {size}", f"Upload-Offset: {offset}",
            *(f"{k}: {v}" for k, v in _headers(sub, token).items()), "", ""]  # fmt: skip
    with socket.create_connection((host, int(port))) as connection:
        connection.sendall("\r\n".join(head).encode() + sub.body[offset : offset + size // 2])


def test_an_upload_resumes_after_a_dropped_connection(world: World, served: Served) -> None:
    url, database_url = served.url, served.database_url
    sub = signed(world, "health")
    token = auth(world, url, "health")()
    opening = {**sub.headers(), **token, "Upload-Length": str(len(sub.body))}
    assert requests.post(f"{url}/v1/uploads", headers=opening, timeout=10).status_code == 201
    path = f"{url}/v1/uploads/{sub.manifest['batch_id']}"
    half = (len(sub.body) // 2 // CHUNK) * CHUNK
    for offset in range(0, half, CHUNK):
        sent = requests.patch(path, data=sub.body[offset : offset + CHUNK], timeout=10,
                              headers=_headers(sub, token, **{"Content-Type": CLKS_MEDIA_TYPE,
                                                       "Upload-Offset": str(offset)}))  # fmt: skip
        assert sent.status_code == 200, sent.text
    _cut_short(url, sub, token, half, CHUNK)  # the node's connection drops mid-chunk
    asked = requests.get(path, headers=_headers(sub, token), timeout=10)
    assert asked.json()["offset"] == half == int(asked.headers["Upload-Offset"])
    commit = requests.post(f"{path}/commit", headers=_headers(sub, token), timeout=10)
    assert commit.status_code == 422 and str(half) in commit.json()["detail"]
    assert requests.post(f"{url}/v1/uploads", headers=opening, timeout=10).json()["offset"] == half
    result = upload(
        sub, url, chunk_bytes=CHUNK, auth=auth(world, url, "health")
    )  # a new client: asks the offset, sends the rest
    assert result["records"] == len(world.batches["health"]) and not result["already_stored"]
    store = Store(database_url)
    try:
        assert store.batch_body(sub.manifest["batch_id"]) == sub.body
    finally:
        store.engine.dispose()


@dataclass
class CuttingProxy:
    """A TCP relay that drops each of the first ``cuts`` connections after ``after`` bytes
    from the client: a real dropped connection in the middle of an upload."""

    upstream: tuple[str, int]
    after: int
    cuts: int
    cut: int = 0
    _server: socket.socket = field(default_factory=lambda: socket.create_server(("127.0.0.1", 0)))

    @property
    def url(self) -> str:
        host, port = self._server.getsockname()
        return f"http://{host}:{port}"

    def start(self) -> CuttingProxy:
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.upstream)
            budget = self.after if self.cut < self.cuts else -1
            self.cut += budget >= 0
            threading.Thread(target=self._pump, args=(client, upstream, budget),
                             daemon=True).start()  # fmt: skip
            threading.Thread(target=self._pump, args=(upstream, client, -1), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, budget: int) -> None:
        try:
            while data := source.recv(65536):
                if budget >= 0 and len(data) >= budget:
                    sink.sendall(data[:budget])
                    break
                budget -= len(data) if budget >= 0 else 0
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for end in (source, sink):
                with contextlib.suppress(OSError):
                    end.shutdown(socket.SHUT_RDWR)
                    end.close()


def test_the_gateway_client_retries_and_resumes_through_dropped_connections(
    world: World, served: Served
) -> None:
    url, database_url = served.url, served.database_url
    host, port = url.removeprefix("http://").split(":")
    sub = signed(world)
    proxy = CuttingProxy((host, int(port)), after=len(sub.body) // 3, cuts=2).start()
    result = upload(sub, proxy.url, chunk_bytes=CHUNK, auth=auth(world, url))
    assert proxy.cut == 2, "the proxy dropped two connections mid-upload"
    assert result["records"] == len(world.batches["police"]) and not result["already_stored"]
    store = Store(database_url)
    try:
        assert store.batch_body(sub.manifest["batch_id"]) == sub.body
    finally:
        store.engine.dispose()


def test_identical_requests_at_the_same_instant_store_the_batch_once(
    world: World, served: Served
) -> None:
    url, database_url = served.url, served.database_url
    sub = signed(world, "health")
    gate, answers = threading.Barrier(2), []
    headers = {**sub.headers(), **auth(world, url, "health")()}

    def post() -> None:
        gate.wait()
        answers.append(requests.post(f"{url}/v1/batches", data=sub.body, headers=headers,
                                     timeout=30))  # fmt: skip

    threads = [threading.Thread(target=post) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(a.status_code for a in answers) == [200, 201], [a.text for a in answers]
    assert sorted(a.json()["already_stored"] for a in answers) == [False, True]
    stored = [row for row in tables(database_url)["batches"] if row[0] == sub.manifest["batch_id"]]
    assert len(stored) == 1


def _altered(world: World) -> Submission:
    sub = signed(world)
    body = bytearray(sub.body)
    body[len(body) // 2] ^= 1
    return dataclasses.replace(sub, body=bytes(body))


REFUSED = [
    ("signed-by-another-key", lambda w: signed(w, signature=w.keys["health"].sign(b"x")),
     AccessError),
    ("body-hash-differs", _altered, InputError),
    ("policy-refuses-an-attribute", lambda w: prepare_submission(
        with_extra_attribute(w.batches["police"], "ethnicity"), source="police",
        policy_hash=w.policy.policy_hash, node_key=w.keys["police"]), AccessError),
]  # fmt: skip


@pytest.mark.parametrize(("make", "error"), [pytest.param(m, e, id=n) for n, m, e in REFUSED])
def test_a_refused_upload_leaves_every_table_as_it_was(
    world: World, served: Served, make: Any, error: type[Exception]
) -> None:
    service, database_url = served.url, served.database_url
    upload(signed(world, "health"), service, chunk_bytes=CHUNK, auth=auth(world, service, "health"))
    before = tables(database_url)
    assert before["batches"] and before["records"] and before["body_chunks"]
    with pytest.raises(error):
        upload(make(world), service, chunk_bytes=CHUNK, auth=auth(world, service))
    assert tables(database_url) == before


def test_a_chunk_with_another_signature_is_refused(world: World, served: Served) -> None:
    url = served.url
    sub = signed(world)
    token = auth(world, url)()
    opening = {**sub.headers(), **token, "Upload-Length": str(len(sub.body))}
    requests.post(f"{url}/v1/uploads", headers=opening, timeout=10).raise_for_status()
    forged = hashlib.sha256(b"not the signature").hexdigest()
    answer = requests.patch(f"{url}/v1/uploads/{sub.manifest['batch_id']}", data=b"x" * 10,
                            headers={"Placelink-Signature": forged, "Upload-Offset": "0", **token,
                                     "Content-Type": CLKS_MEDIA_TYPE}, timeout=10)  # fmt: skip
    assert answer.status_code == 403
    assert answer.headers["Content-Type"] == "application/problem+json"


def test_an_upload_resumes_after_the_service_is_killed_and_restarted(world: World) -> None:
    """Fault: the service dies (SIGKILL, no clean shutdown) with half a batch received; a new
    service on the same database takes the upload up where it stopped: every record stored,
    none twice."""
    database_url = f"sqlite:///{world.folder / 'killed.db'}"
    sub, first = signed(world, "health"), serve(world, database_url, "killed-first")
    half = (len(sub.body) // 2 // CHUNK) * CHUNK
    try:
        token = auth(world, first.url, "health")()
        opening = {**sub.headers(), **token, "Upload-Length": str(len(sub.body))}
        opened = requests.post(f"{first.url}/v1/uploads", headers=opening, timeout=10)
        assert opened.status_code == 201
        path = f"{first.url}/v1/uploads/{sub.manifest['batch_id']}"
        for offset in range(0, half, CHUNK):
            chunk = {"Content-Type": CLKS_MEDIA_TYPE, "Upload-Offset": str(offset)}
            sent = requests.patch(
                path,
                data=sub.body[offset : offset + CHUNK],
                timeout=10,
                headers=_headers(sub, token, **chunk),
            )
            assert sent.status_code == 200, sent.text
    finally:
        first.process.kill()  # the master dies at once; its workers follow it
        first.process.wait()
    second = serve(world, database_url, "killed-second")
    try:
        asked = requests.get(
            f"{second.url}/v1/uploads/{sub.manifest['batch_id']}",
            headers=_headers(sub, auth(world, second.url, "health")()),
            timeout=10,
        )
        assert asked.json()["offset"] == half  # what the dead service received survived it
        result = upload(sub, second.url, chunk_bytes=CHUNK, auth=auth(world, second.url, "health"))
        assert result["records"] == len(world.batches["health"]) and not result["already_stored"]
        again = upload(sub, second.url, chunk_bytes=CHUNK, auth=auth(world, second.url, "health"))
        assert again["already_stored"]
    finally:
        second.stop()
    rows = tables(database_url)
    assert [b for b, _ in rows["batches"]] == [sub.manifest["batch_id"]]
    assert len(rows["records"]) == len(world.batches["health"])
    assert len({p for _, p in rows["records"]}) == len(rows["records"])  # none duplicated
