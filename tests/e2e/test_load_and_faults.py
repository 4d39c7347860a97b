"""Load and faults on the real service (gunicorn on PostgreSQL, loopback), one service for the
module.

Load: a small, bounded run of bench/load.py: concurrent gateways uploading and analysts asking
for hot-spots. The error rate must be 0; the figures (throughput, latency) are printed, not
asserted: speed is measured in bench/load.py.

Fault: PostgreSQL restarted under load. The service keeps taking uploads and hot-spot queries
while the database server restarts once; requests caught by the outage are answered 503
problem+json (never 500), the service answers again by itself (no manual step: stale pooled
connections are pinged and replaced), and every batch the gateways retried is stored exactly
once. It restarts the machine's PostgreSQL cluster (``pg_ctlcluster VERSION NAME restart``),
which other tests on the same server may notice as a blip: it is marked ``fault`` so it can be
run alone (``pytest -m fault``), and it is part of the default run.
"""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import requests
from sqlalchemy import create_engine, func, select
from sqlalchemy.engine import make_url

from linkage.app import PROBLEM_BASE
from linkage.tables import BatchRow, RecordRow
from tests.conftest import require
from tests.e2e.load_bench import bench_load, empty_postgres_url

pytestmark = pytest.mark.e2e
ALLOWED = {200, 201, 503}


def _cluster(url: str) -> list[str] | None:
    """[version, name] of the local cluster serving ``url``'s port, from pg_lsclusters."""
    try:
        listing = subprocess.run(
            ["pg_lsclusters", "-h"], capture_output=True, text=True, check=True
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    port = str(make_url(url).port or 5432)
    for line in listing.splitlines():
        columns = line.split()
        if len(columns) >= 4 and columns[2] == port and columns[3] == "online":
            return columns[:2]
    return None


@dataclass
class Seen:
    """Every answer: (kind, status, problem type or '', monotonic time)."""

    answers: list[tuple[str, int, str, float]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, kind: str, response: requests.Response | None) -> int:
        status = 0 if response is None else response.status_code
        kind_of_problem = ""
        if response is not None and status >= 400:
            assert response.headers["Content-Type"].startswith("application/problem+json")
            kind_of_problem = response.json()["type"].removeprefix(PROBLEM_BASE)
        with self.lock:
            self.answers.append((kind, status, kind_of_problem, time.monotonic()))
        return status


def _call(call: object) -> requests.Response | None:
    try:
        return call()  # type: ignore[operator,no-any-return]
    except requests.RequestException:
        return None


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    url = empty_postgres_url()
    with bench_load.load_world(tmp_path_factory.mktemp("load"), url, people=400, chunk=10) as w:
        yield w


def _count(url: str, table: Any, ids: list[str] | None = None) -> int:
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            query = select(func.count()).select_from(table)
            if ids is not None:
                query = query.where(table.batch_id.in_(ids))
            return int(connection.scalar(query) or 0)
    finally:
        engine.dispose()


LOAD_BATCHES = 12  # the load test's share of the pending batches; the fault test has the rest


def test_concurrent_uploads_and_queries_have_no_errors(world: Any) -> None:
    assert len(world.pending) >= LOAD_BATCHES + 10, "the fault test needs batches of its own"
    before = _count(world.database_url, BatchRow)
    figures = bench_load.run_load(world, uploaders=3, analysts=2, uploads=4, queries=8, time_cap=60)
    print("\n".join(figures.lines()))
    uploads, queries = figures.of("upload"), figures.of("hotspots")
    assert len(uploads) == LOAD_BATCHES and len(queries) == 16, "stopped early"
    assert figures.error_rate == 0, [(o.kind, o.status) for o in figures.outcomes]
    assert _count(world.database_url, BatchRow) == before + LOAD_BATCHES  # each stored once


@pytest.mark.fault
def test_the_service_rides_out_a_postgres_restart(world: Any) -> None:
    url = world.database_url
    cluster = _cluster(url)
    require(cluster is not None, "a local PostgreSQL cluster (pg_lsclusters, pg_ctlcluster)")
    assert cluster is not None
    seen, stop = Seen(), threading.Event()
    subs = [world.submission(agency, batch) for agency, batch in world.pending[LOAD_BATCHES:]]
    deadline = time.monotonic() + 90

    def uploader(share: list[object]) -> None:
        for sub in share:  # the same signed batch is retried until stored: a gateway's job
            while time.monotonic() < deadline:
                answer = _call(lambda s=sub: bench_load.post_upload(world, s, timeout=30))
                if seen.add("upload", answer) in (200, 201):
                    break
                time.sleep(0.2)
            time.sleep(0.05)

    def reader() -> None:
        while not stop.is_set() and time.monotonic() < deadline:
            answer = _call(lambda: bench_load.post_hotspots(world))
            seen.add("hotspots", answer)
            time.sleep(0.02)

    threads = [threading.Thread(target=uploader, args=(subs[i::2],)) for i in range(2)]
    threads += [threading.Thread(target=reader) for _ in range(2)]
    for thread in threads:
        thread.start()
    time.sleep(0.5)
    restart_began = time.monotonic()
    subprocess.run(["pg_ctlcluster", *cluster, "restart"], check=True, timeout=60)
    restarted = time.monotonic()
    for thread in threads[:2]:
        thread.join(timeout=120)
    time.sleep(1.0)  # the readers keep asking after the last upload
    stop.set()
    for thread in threads[2:]:
        thread.join(timeout=60)
    after = _call(lambda: bench_load.post_hotspots(world))
    print(f"restart {restarted - restart_began:.1f} s; answers {len(seen.answers)}, "
          f"503s {sum(1 for a in seen.answers if a[1] == 503)}")  # fmt: skip
    statuses = {status for _, status, _, _ in seen.answers}
    assert statuses <= ALLOWED, sorted(statuses)  # no 500, no dropped connection
    outage = [a for a in seen.answers if a[1] == 503]
    assert outage, "no request met the outage: the test did not test anything"
    assert {problem for _, _, problem, _ in outage} == {"storage-unavailable"}
    assert all(restart_began - 1 <= at <= restarted + 5 for *_, at in outage)
    assert after is not None and after.status_code == 200  # back without a manual step
    assert any(s in (200, 201) and at > restarted for _, s, _, at in seen.answers)
    ids = [sub.manifest["batch_id"] for sub in subs]
    assert _count(url, BatchRow, ids) == len(subs)  # every retried batch stored, none twice
    records = sum(sub.manifest["record_count"] for sub in subs)
    assert _count(url, RecordRow, ids) == records
