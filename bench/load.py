"""A bounded load test of the real linkage service on loopback: gateways uploading and analysts
asking for hot-spots at the same time.

    python bench/load.py [--uploaders 4] [--analysts 4] [--uploads 30] [--queries 60]
                         [--people 3000] [--chunk 15] [--time-cap 120] [--database-url URL]

The service is gunicorn (linkage.server.start_service) on PostgreSQL when --database-url (or
PLACELINK_TEST_POSTGRES_URL) names one, else on a file SQLite store. A synthetic town is encoded
in-process under a DPO-signed policy; half of each agency's records are uploaded and linked first,
so that hot-spot queries have entities to count. Then N uploader threads each send a fixed number
of signed batches (chunks of the other half, each freshly signed, as a gateway's publish would)
while M analyst threads each send a fixed number of hot-spot queries. Every thread stops at its
count or at the time cap, whichever comes first: the run stops by itself. It sends only to
127.0.0.1.

Prints requests/s overall, the error rate (target 0: any status other than 200/201 or any
exception is an error) and p50/p95 latency per kind. ``run_load`` is also what
tests/e2e/test_load.py and tests/e2e/test_postgres_restart.py drive, at small sizes.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import os
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import requests

from gateway.oauth_client import ClientCredentials, token_url_for
from gateway.pipeline import context_for_policy, encode_csv
from gateway.pseudonyms import PseudonymMap
from gateway.schema import default_schema, default_schema_path
from gateway.submit import Submission, prepare_submission
from keys import SigningKey, new_secret
from linkage.server import RunningService, start_service
from placelink.demo import (  # the demo's signed example policy and OAuth clients
    _dpo_signed,
    _enrolled_policy,
    _register_clients,
)
from placelink.town import AGENCIES, generate_town, write_canonical_csv
from policies.clks import EncodedBatch
from policies.model import Policy, dump_policy, parse_policy

HOTSPOT_QUERY = {"kind": "table", "by": "area"}


@dataclasses.dataclass
class LoadWorld:
    """A running service over a linked first half, and the second half still to upload."""

    service: RunningService
    policy: Policy
    keys: dict[str, SigningKey]
    pending: list[tuple[str, EncodedBatch]]  # (agency, chunk) not yet uploaded
    database_url: str
    gateways: dict[str, ClientCredentials]  # each agency's OAuth client (its node key)
    analyst: ClientCredentials
    operator: ClientCredentials

    @property
    def url(self) -> str:
        return self.service.url

    def submission(self, agency: str, batch: EncodedBatch) -> Submission:
        return prepare_submission(
            batch, source=agency, policy_hash=self.policy.policy_hash, node_key=self.keys[agency]
        )


def rows(batch: EncodedBatch, start: int, stop: int) -> EncodedBatch:
    """Records ``start:stop`` of a batch, as a batch of their own."""
    return dataclasses.replace(
        batch,
        pseudonyms=batch.pseudonyms[start:stop],
        present=batch.present[start:stop],
        values={name: column[start:stop] for name, column in batch.values.items()},
        attributes=batch.attributes[start:stop],
    )


def _encode_town(folder: Path, policy: Policy, people: int, seed: int) -> dict[str, EncodedBatch]:
    town = generate_town(seed=seed, people=people, areas=6)
    today = dt.date.today()
    context = context_for_policy(policy, default_schema(), epoch=0, today=today)
    secret, batches = new_secret(), {}
    for agency, canonical in town.canonical_rows.items():
        path = folder / f"{agency}.csv"
        write_canonical_csv(canonical, path)
        result = encode_csv(path, secret=secret, context=context, pseudonyms=PseudonymMap())
        batches[agency] = result.batch
    return batches


def post_upload(world: LoadWorld, sub: Submission, timeout: float = 60.0) -> requests.Response:
    """One signed batch, with its gateway's access token (fetched once, then cached)."""
    headers = {**sub.headers(), **world.gateways[str(sub.manifest["source"])].headers()}
    return requests.post(f"{world.url}/v1/batches", data=sub.body, headers=headers,
                         timeout=timeout)  # fmt: skip


def post_hotspots(world: LoadWorld, timeout: float = 60.0) -> requests.Response:
    return requests.post(
        f"{world.url}/v1/policies/{world.policy.policy_id}/hotspots",
        json=HOTSPOT_QUERY,
        headers=world.analyst.headers(),
        timeout=timeout,
    )


@contextmanager
def load_world(
    folder: Path, database_url: str, *, people: int, seed: int = 5, chunk: int = 40
) -> Iterator[LoadWorld]:
    """Start the service and link the first half of every agency's records."""
    node_keys = {agency: SigningKey.generate() for agency in AGENCIES}
    document, trusted = _dpo_signed(
        _enrolled_policy(node_keys, default_schema().sha256, dt.date.today())
    )
    dump_policy(document, folder / "policy.yaml")
    policy = parse_policy(document)
    batches = _encode_town(folder, policy, people, seed)
    clients, signing, secrets = _register_clients(folder, policy.policy_id, node_keys)
    service = start_service(
        database_url=database_url,
        policy_paths=[folder / "policy.yaml"],
        schema_paths=[default_schema_path()],
        log_path=folder / "service.log",
        trusted_dpo_keys=trusted,
        clients_path=clients,
        oauth_signing_key=signing,
        oauth_key_unencrypted_unsafe=True,
    )
    try:
        token_url = token_url_for(service.url)
        world = LoadWorld(
            service, policy, node_keys, [], database_url,
            {a: ClientCredentials(token_url, f"{a}-gateway", node_key=k)
             for a, k in node_keys.items()},
            ClientCredentials(token_url, "analyst", client_secret=secrets["analyst"]),
            ClientCredentials(token_url, "operator", client_secret=secrets["operator"]),
        )  # fmt: skip
        for agency, batch in batches.items():
            half = len(batch) // 2
            first_half = world.submission(agency, rows(batch, 0, half))
            post_upload(world, first_half).raise_for_status()
            world.pending += [
                (agency, rows(batch, start, min(start + chunk, len(batch))))
                for start in range(half, len(batch), chunk)
            ]
        link = requests.post(
            f"{world.url}/v1/policies/{policy.policy_id}/link-runs",
            headers=world.operator.headers(),
            timeout=600,
        )
        link.raise_for_status()
        world.analyst.access_token()  # every token fetched before the load starts
        yield world
    finally:
        service.stop()


@dataclasses.dataclass
class Outcome:
    kind: str
    seconds: float
    status: int  # 0: no answer (an exception)


@dataclasses.dataclass
class Figures:
    outcomes: list[Outcome]
    wall_seconds: float

    def of(self, kind: str) -> list[Outcome]:
        return [o for o in self.outcomes if o.kind == kind]

    @property
    def errors(self) -> int:
        return sum(1 for o in self.outcomes if o.status not in (200, 201))

    @property
    def error_rate(self) -> float:
        return self.errors / len(self.outcomes) if self.outcomes else 0.0

    @property
    def throughput(self) -> float:
        return len(self.outcomes) / self.wall_seconds if self.wall_seconds else 0.0

    def percentile_ms(self, kind: str, q: float) -> float:
        times = sorted(o.seconds for o in self.of(kind))
        if not times:
            return 0.0
        if len(times) == 1:
            return times[0] * 1000
        return statistics.quantiles(times, n=100, method="inclusive")[int(q) - 1] * 1000

    def lines(self) -> list[str]:
        out = [
            f"requests {len(self.outcomes)} in {self.wall_seconds:.1f} s: "
            f"{self.throughput:.1f} req/s, errors {self.errors} ({self.error_rate:.2%})"
        ]
        for kind in sorted({o.kind for o in self.outcomes}):
            done = self.of(kind)
            out.append(
                f"  {kind:<9} n={len(done):<5} p50 {self.percentile_ms(kind, 50):7.1f} ms  "
                f"p95 {self.percentile_ms(kind, 95):7.1f} ms  "
                f"errors {sum(1 for o in done if o.status not in (200, 201))}"
            )
        return out


def _timed(kind: str, call: Callable[[], requests.Response]) -> Outcome:
    started = time.perf_counter()
    try:
        status = call().status_code
    except requests.RequestException:
        status = 0
    return Outcome(kind, time.perf_counter() - started, status)


def run_load(
    world: LoadWorld, *, uploaders: int, analysts: int, uploads: int, queries: int, time_cap: float
) -> Figures:
    """Each uploader sends ``uploads`` batches (or as many as are pending), each analyst
    ``queries`` hot-spot queries, all at once; every thread stops at its count or the cap."""
    deadline = time.monotonic() + time_cap
    outcomes: list[Outcome] = []
    lock = threading.Lock()
    work = list(world.pending[: uploaders * uploads])
    shares = [work[i::uploaders] for i in range(uploaders)]

    def record(outcome: Outcome) -> None:
        with lock:
            outcomes.append(outcome)

    def uploader(share: list[tuple[str, EncodedBatch]]) -> None:
        for agency, batch in share:
            if time.monotonic() > deadline:
                return
            sub = world.submission(agency, batch)
            record(_timed("upload", lambda s=sub: post_upload(world, s)))  # type: ignore[misc]

    def analyst() -> None:
        for _ in range(queries):
            if time.monotonic() > deadline:
                return
            record(_timed("hotspots", lambda: post_hotspots(world)))

    threads = [threading.Thread(target=uploader, args=(share,)) for share in shares]
    threads += [threading.Thread(target=analyst) for _ in range(analysts)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=max(deadline - time.monotonic(), 0) + 70)
    return Figures(outcomes, time.perf_counter() - started)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--uploaders", type=int, default=4)
    parser.add_argument("--analysts", type=int, default=4)
    parser.add_argument("--uploads", type=int, default=30, help="batches per uploader")
    parser.add_argument("--queries", type=int, default=60, help="hot-spot queries per analyst")
    parser.add_argument("--people", type=int, default=3000)
    parser.add_argument("--chunk", type=int, default=15, help="records per uploaded batch")
    parser.add_argument("--time-cap", type=float, default=120.0, help="seconds")
    parser.add_argument("--database-url", default=os.environ.get("PLACELINK_TEST_POSTGRES_URL"))
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as folder:
        url = args.database_url or f"sqlite:///{Path(folder) / 'linkage.db'}"
        if url.startswith("postgresql"):
            from sqlalchemy import create_engine

            from linkage.storage import Base

            engine = create_engine(url)
            Base.metadata.drop_all(engine)  # a bench database of its own: start from nothing
            engine.dispose()
        print(f"store: {url.split(':')[0]}; setting up {args.people} people", file=sys.stderr)
        with load_world(Path(folder), url, people=args.people, chunk=args.chunk) as world:
            pending = len(world.pending)
            print(f"{pending} batches pending; starting the load", file=sys.stderr)
            figures = run_load(
                world, uploaders=args.uploaders, analysts=args.analysts,
                uploads=args.uploads, queries=args.queries, time_cap=args.time_cap,
            )  # fmt: skip
    print(
        f"load: {args.uploaders} uploaders x up to {args.uploads} batches of {args.chunk} records "
        f"({pending} pending), {args.analysts} analysts x {args.queries} hot-spot queries; "
        "gunicorn 1 worker x 4 threads"
    )
    for line in figures.lines():
        print(line)
    return 0 if figures.error_rate == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
