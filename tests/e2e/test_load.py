"""A small, bounded load test: concurrent gateways uploading and analysts asking for hot-spots
against the real service (gunicorn on PostgreSQL, loopback). The error rate must be 0. The
figures (throughput, latency) are printed, not asserted: speed is measured in bench/load.py."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import create_engine, func, select

from linkage.tables import BatchRow
from tests.e2e.load_bench import bench_load, empty_postgres_url

pytestmark = pytest.mark.e2e


def test_concurrent_uploads_and_queries_have_no_errors(tmp_path: Path) -> None:
    url = empty_postgres_url()
    with bench_load.load_world(tmp_path, url, people=400, chunk=25) as world:
        pending = {sub_id for sub_id in range(len(world.pending))}
        figures = bench_load.run_load(
            world, uploaders=3, analysts=2, uploads=4, queries=8, time_cap=60
        )
    print("\n".join(figures.lines()))
    uploads, queries = figures.of("upload"), figures.of("hotspots")
    assert len(uploads) == min(12, len(pending)) and len(queries) == 16, "stopped early"
    assert figures.error_rate == 0, [(o.kind, o.status) for o in figures.outcomes]
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            stored = connection.scalar(select(func.count()).select_from(BatchRow))
    finally:
        engine.dispose()
    assert stored == 5 + len(uploads)  # the five first halves, then every upload once
