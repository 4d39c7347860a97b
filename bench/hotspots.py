"""Hot-spot query latency over 1M linked entities (target: p95 under 100 ms).

    python bench/hotspots.py [--entities 1000000] [--queries 300] [--seed 7]

Generates the linked entities synthetically (placelink.entities: Seabrook's sectors, need
concentrated in a few areas, 2024-2026 contacts, flags) and bulk-loads them straight into a
SQLite store as one link run, not through the gateways. Then it runs a seeded mix of queries
(tables with one to three measures, trends, co-occurrence matrices; agency combinations,
flags and time windows) from several analysts through the service's full API path (Flask
test client: token check, parsing, index, differencing against each analyst's history,
disclosure control, the audit row in SQLite and the audit log's two fsync'd entries), and
prints p50/p95/p99 latency overall and per kind. The index build (once per link run and
worker) is timed apart.
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import statistics
import sys
import tempfile
import time
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from gateway.schema import default_schema_path
from keys import SigningKey
from linkage.app import create_app
from linkage.auth import TokenAuthority
from linkage.clients import Client
from linkage.storage import Store
from placelink.entities import FLAGS, declare_flags, linked_records
from placelink.town import AGENCIES
from policies.model import dump_policy

POLICY_ID = "seabrook-task-force"
TARGET_P95_MS = 100.0
ANALYSTS = [f"bench-analyst-{i}" for i in range(4)]


def bench_tokens() -> tuple[TokenAuthority, list[str]]:
    """Four analyst clients and one real access token each (every query verifies one)."""
    clients = {
        name: Client(name, "task_force", frozenset({POLICY_ID}), frozenset({"query:hotspots"}),
                     secret_hash="scrypt$unused")
        for name in ANALYSTS
    }  # fmt: skip
    authority = TokenAuthority(clients, "bench", signing_key=Ed25519PrivateKey.generate())
    issued = [authority.issue(c, c.scopes)["access_token"] for c in clients.values()]
    return authority, [str(t) for t in issued]


MONTHS = [f"{y}-{m:02d}" for y in (2024, 2025, 2026) for m in range(1, 13)]


def random_filter(rng: random.Random) -> dict[str, Any]:
    agencies = rng.sample(AGENCIES, 2)
    query: dict[str, Any] = {"min_agencies": rng.choice([1, 2, 2, 3, 3, 4])}
    if rng.random() < 0.4:
        query["all_of"] = [agencies[0]]
    if rng.random() < 0.25:
        query["none_of"] = [agencies[1]]
    if rng.random() < 0.25:
        query["flags"] = [rng.choice(list(FLAGS.values()))]
    if rng.random() < 0.4:
        start = rng.randrange(len(MONTHS) - 6)
        query["since"], query["until"] = MONTHS[start], MONTHS[start + rng.randrange(3, 6)]
    return query


def random_query(rng: random.Random) -> dict[str, Any]:
    kind = rng.choices(["table", "trend", "cooccurrence"], weights=[6, 2, 2])[0]
    query: dict[str, Any] = {"kind": kind, "filter": random_filter(rng)}
    if kind == "table":
        query["measures"] = [
            {"name": f"m{i}", "min_agencies": i + 1} for i in range(rng.randint(1, 3))
        ]
    return query


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def write_policy(folder: Path) -> Path:
    """The example task-force policy, flags declared, in force today."""
    text = resources.files("policies").joinpath("examples/task-force.yaml").read_text("utf-8")
    document = declare_flags(yaml.safe_load(text))
    today = dt.date.today()
    document["effective_from"], document["expires_on"] = today, today + dt.timedelta(days=365)
    dump_policy(document, folder / "policy.yaml")
    return folder / "policy.yaml"


def load(folder: Path, entities: int, seed: int) -> tuple[Path, str]:
    policy_path = write_policy(folder)
    url = f"sqlite:///{folder / 'linkage.db'}"
    started = time.perf_counter()
    Store(url).load_linked_records(POLICY_ID, linked_records(entities, seed=seed, areas=100))
    print(f"generated and bulk-loaded {entities:,} linked entities in "
          f"{time.perf_counter() - started:.1f} s", file=sys.stderr)  # fmt: skip
    return policy_path, url


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--entities", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="placelink-bench-") as tmp:
        policy_path, url = load(Path(tmp), args.entities, args.seed)
        authority, tokens = bench_tokens()
        # the bench's policy is unsigned: it measures queries, not the approval check
        app = create_app(
            url,
            [str(policy_path)],
            [str(default_schema_path())],
            auth=authority,
            allow_unsigned_policies_unsafe=True,
            audit_log_path=str(Path(tmp) / "audit.jsonl"),  # as in production: a file, fsync'd
            service_key=SigningKey.generate(),
        )
        client = app.test_client()
        path = f"/v1/policies/{POLICY_ID}/hotspots"
        started = time.perf_counter()
        warm = client.post(path, json={}, headers={"Authorization": f"Bearer {tokens[0]}"})
        assert warm.status_code == 200, warm.get_data(as_text=True)
        build = time.perf_counter() - started
        rng = random.Random(args.seed)
        timings: dict[str, list[float]] = {"table": [], "trend": [], "cooccurrence": []}
        for _ in range(args.queries):
            query = random_query(rng)
            headers = {"Authorization": f"Bearer {rng.choice(tokens)}"}
            started = time.perf_counter()
            response = client.post(path, json=query, headers=headers)
            elapsed = (time.perf_counter() - started) * 1000
            assert response.status_code == 200, response.get_data(as_text=True)
            timings[query["kind"]].append(elapsed)
    report(args, build, timings)
    return 0


def report(args: argparse.Namespace, build: float, timings: dict[str, list[float]]) -> None:
    every = [t for values in timings.values() for t in values]
    p50, p95, p99 = (percentile(every, q) for q in (0.5, 0.95, 0.99))
    print(f"hot-spot queries over {args.entities:,} linked entities ({len(every)} queries, "
          f"4 analysts, full API path incl. differencing and the audit row)")  # fmt: skip
    print(f"index build (first query after a link run): {build:.1f} s")
    print(f"latency ms: p50 {p50:.1f}  p95 {p95:.1f}  p99 {p99:.1f}  max {max(every):.1f}  "
          f"mean {statistics.fmean(every):.1f}")  # fmt: skip
    for kind, values in timings.items():
        if values:
            print(f"  {kind:<13} n={len(values):<4} p50 {percentile(values, 0.5):6.1f}  "
                  f"p95 {percentile(values, 0.95):6.1f}")  # fmt: skip
    verdict = "meets" if p95 < TARGET_P95_MS else "MISSES"
    print(f"p95 / target: {p95 / TARGET_P95_MS:.2f} ({verdict} p95 < {TARGET_P95_MS:.0f} ms)")


if __name__ == "__main__":
    sys.exit(main())
