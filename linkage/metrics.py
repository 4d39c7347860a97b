"""The linkage service's own Prometheus metrics (request counts and latencies are
:mod:`policies.telemetry`'s, shared with the gateway node). Labels are closed sets (outcomes,
problem types, decisions, treatments): never a policy id, a source, a caller or a value.

- ``placelink_uploads_total{outcome}``: ``accepted``, ``already_stored`` or the problem type
  of the refusal (``bad-signature``, ``replay``, ``invalid-input``, ``policy-refused`` ...);
- ``placelink_records_stored_total``: encoded records stored by accepted uploads;
- ``placelink_link_runs_total{outcome}`` and ``placelink_link_run_duration_seconds``;
- ``placelink_hotspot_queries_total{decision}`` (``answered``, ``refused``) and
  ``placelink_hotspot_cells_total{treatment}`` (cells suppressed, rounded, noised ...).
"""

from __future__ import annotations

from prometheus_client import Counter, Histogram

from linkage.query_log import QueryEntry

UPLOADS = Counter(
    "placelink_uploads", "Uploads answered, by outcome (accepted or the problem type).", ["outcome"]
)
RECORDS_STORED = Counter("placelink_records_stored", "Encoded records stored by uploads.")
LINK_RUNS = Counter(
    "placelink_link_runs", "Link runs, by outcome (ok or the problem type).", ["outcome"]
)
LINK_RUN_SECONDS = Histogram(
    "placelink_link_run_duration_seconds",
    "Time a link run took (blocking, comparison, EM, clustering, storing).",
    buckets=(0.1, 0.5, 1, 5, 15, 30, 60, 120, 300, 600, 1200, 3600),
)
HOTSPOT_QUERIES = Counter(
    "placelink_hotspot_queries", "Hot-spot queries decided, by decision.", ["decision"]
)
HOTSPOT_CELLS = Counter(
    "placelink_hotspot_cells",
    "Cells of hot-spot answers by the disclosure treatment they got.",
    ["treatment"],
)


def record_upload(outcome: str, records: int = 0) -> None:
    UPLOADS.labels(outcome).inc()
    if records:
        RECORDS_STORED.inc(records)


def record_link_run(outcome: str, seconds: float) -> None:
    LINK_RUNS.labels(outcome).inc()
    if outcome == "ok":
        LINK_RUN_SECONDS.observe(seconds)


def record_query(entry: QueryEntry) -> None:
    """The store's ``on_query`` hook: called after each query's decision is committed."""
    HOTSPOT_QUERIES.labels(entry.decision).inc()
    for treatment, cells in entry.treatments.items():
        if cells:
            HOTSPOT_CELLS.labels(str(treatment)).inc(cells)
