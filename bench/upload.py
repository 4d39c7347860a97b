"""Upload throughput and memory: a 1M-record batch from a gateway to the linkage service.

    python bench/upload.py [--records 1000000] [--chunk-mib 8] [--postgres]

Writes a valid ``.clks`` body of ``--records`` synthetic encoded records straight to a file
(random filters and tokens in the default schema's layout, random areas and months: the
encoder is not run; the layout is taken from a small real encoded batch), signs it with a
fresh node key under a policy signed by fresh DPO keys, starts the real linkage service
(gunicorn, one worker, on loopback; SQLite, or PostgreSQL from PLACELINK_TEST_POSTGRES_URL with
``--postgres``) and uploads the file with the gateway's client (``gateway.submit.upload``:
chunks, then the commit that checks, parses and stores every record). Prints records/s and
MB/s end to end, and the peak resident memory (VmHWM from /proc, reset just before the upload
with ``clear_refs``) of the client process and of the gunicorn worker.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import BinaryIO

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # tests.policy_keys: the policy and its enrolment, as tests do

from gateway.pipeline import context_for_policy, encode_csv  # noqa: E402
from gateway.pseudonyms import PseudonymMap  # noqa: E402
from gateway.schema import default_schema, default_schema_path  # noqa: E402
from gateway.submit import Submission, prepare_file_submission, upload  # noqa: E402
from keys import SigningKey, new_secret  # noqa: E402
from linkage.server import start_service  # noqa: E402
from linkage.storage import Store  # noqa: E402
from placelink.town import generate_town, write_canonical_csv  # noqa: E402
from policies.canonical import canonical_json  # noqa: E402
from policies.clks import FORMAT_VERSION, MAGIC, PSEUDONYM_BYTES, EncodedBatch  # noqa: E402
from policies.model import dump_policy, parse_policy  # noqa: E402
from tests.oauth_clients import (  # noqa: E402
    credentials,
    gateway_client_id,
    write_oauth_files,
)
from tests.policy_keys import EXAMPLE_DPOS, enrolled_document  # noqa: E402

SOURCE = "police"
BLOCK = 50_000
MONTHS = [f"{y}-{m:02d}" for y in (2024, 2025, 2026) for m in range(1, 13)]
AREAS = [f"SB{d} {s}" for d in range(1, 10) for s in range(1, 10)]


def template(folder: Path, policy_path: Path) -> EncodedBatch:
    """A small real batch: the default schema's field layout and the policy's attributes."""
    policy = parse_policy(yaml.safe_load(policy_path.read_text(encoding="utf-8")))
    context = context_for_policy(policy, default_schema(), epoch=0, today=dt.date.today())
    town = generate_town(seed=1, people=40)
    write_canonical_csv(town.canonical_rows[SOURCE], folder / "tiny.csv")
    return encode_csv(folder / "tiny.csv", secret=new_secret(),
                      context=context, pseudonyms=PseudonymMap()).batch  # fmt: skip


def write_body(path: Path, shape: EncodedBatch, records: int, seed: int) -> None:
    """A valid .clks body of ``records`` random records, written block by block."""
    rng, pick = np.random.default_rng(seed), random.Random(seed)
    header = shape.header() | {"record_count": records}
    width = sum(f.nbytes for f in shape.fields)
    with path.open("wb") as out, tempfile.TemporaryFile() as table:
        encoded = canonical_json(header)
        out.write(MAGIC + FORMAT_VERSION.to_bytes(2, "big") + len(encoded).to_bytes(4, "big"))
        out.write(encoded)
        table.write(b"[")
        for start in range(0, records, BLOCK):
            n = min(BLOCK, records - start)
            pseudonyms = rng.integers(0, 256, (n, PSEUDONYM_BYTES), dtype=np.uint8)
            present = np.ones((n, len(shape.fields)), dtype=np.uint8)
            values = rng.integers(0, 256, (n, width), dtype=np.uint8)
            out.write(np.hstack([pseudonyms, present, values]).tobytes())
            _attribute_rows(table, shape, n, pick, first=start == 0)
        table.write(b"]")
        out.write(table.tell().to_bytes(4, "big"))
        table.seek(0)
        while piece := table.read(1 << 20):
            out.write(piece)


def _attribute_rows(
    table: BinaryIO, shape: EncodedBatch, n: int, pick: random.Random, *, first: bool
) -> None:
    choices = {"area": AREAS, "event_month": MONTHS}
    rows = (
        canonical_json([pick.choice(choices.get(name, ["1", "0"]))
                        for name in shape.attribute_names])
        for _ in range(n)
    )  # fmt: skip
    table.write((b"" if first else b",") + b",".join(rows))


def worker_pid(master: int) -> int:
    """The gunicorn worker (the master's only child)."""
    children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
    return int(children[0])


def peak_mib(pid: int | str) -> tuple[float, float]:
    """(VmHWM, VmRSS) of a process, in MiB."""
    fields = dict(
        line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
    )
    return (int(fields["VmHWM"].split()[0]) / 1024, int(fields["VmRSS"].split()[0]) / 1024)


def reset_peak(pid: int | str) -> None:
    Path(f"/proc/{pid}/clear_refs").write_text("5")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--chunk-mib", type=int, default=8)
    parser.add_argument("--postgres", action="store_true",
                        help="store in PLACELINK_TEST_POSTGRES_URL instead of SQLite")  # fmt: skip
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    url = os.environ.get("PLACELINK_TEST_POSTGRES_URL", "") if args.postgres else ""
    if args.postgres and not url:
        print("--postgres needs PLACELINK_TEST_POSTGRES_URL", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="placelink-bench-") as tmp:
        measure(Path(tmp), args, url)
    return 0


def signed_batch(folder: Path, records: int, seed: int) -> tuple[Submission, SigningKey, list[str]]:
    """The batch file, signed by a fresh node key enrolled in a policy signed by fresh DPO
    keys; and those DPO keys' fingerprints (the service's trust list)."""
    node = SigningKey.generate()
    dpos = {name: SigningKey.generate() for name in set(EXAMPLE_DPOS.values())}
    document = enrolled_document({SOURCE: node}, today=dt.date.today(), dpo_keys=dpos)
    dump_policy(document, folder / "policy.yaml")
    policy = parse_policy(document)
    started = time.perf_counter()
    write_body(folder / "batch.clks", template(folder, folder / "policy.yaml"), records, seed)
    sub = prepare_file_submission(folder / "batch.clks", source=SOURCE,
                                  policy_hash=policy.policy_hash, node_key=node)  # fmt: skip
    print(f"wrote and signed {records:,} records ({sub.body_length / 1e6:.0f} MB) in "
          f"{time.perf_counter() - started:.1f} s", file=sys.stderr)  # fmt: skip
    return sub, node, sorted(k.fingerprint for k in dpos.values())


def measure(folder: Path, args: argparse.Namespace, url: str) -> None:
    """Make, sign and upload the batch; print the figures."""
    sub, node, trusted = signed_batch(folder, args.records, args.seed)
    size = sub.body_length
    if url:
        from tests.conftest import _empty_postgres

        _empty_postgres(url)
    url = url or f"sqlite:///{folder / 'linkage.db'}"
    oauth = write_oauth_files(folder / "oauth", {SOURCE: node})  # the node's gateway client
    service = start_service(
        database_url=url, policy_paths=[folder / "policy.yaml"],
        schema_paths=[default_schema_path()], log_path=folder / "service.log",
        trusted_dpo_keys=trusted, **oauth.service_kwargs(),
    )  # fmt: skip
    try:
        worker = worker_pid(service.process.pid)
        server_before = peak_mib(worker)[1]
        reset_peak(worker)
        reset_peak("self")
        client_before = peak_mib("self")[1]
        started = time.perf_counter()
        token = credentials(service.url, gateway_client_id(SOURCE), node).headers
        answer = upload(sub, service.url, chunk_bytes=args.chunk_mib << 20, timeout=900,
                        auth=token)  # fmt: skip
        elapsed = time.perf_counter() - started
        server_peak, client_peak = peak_mib(worker)[0], peak_mib("self")[0]
    finally:
        service.stop()
    store = Store(url)
    stored = len(store.batch_body(answer["batch_id"]))
    store.engine.dispose()
    assert answer["records"] == args.records and stored == size, (answer, stored, size)
    backend = "PostgreSQL" if args.postgres else "SQLite"
    print(
        f"upload of {args.records:,} records ({size / 1e6:.0f} MB, {args.chunk_mib} MiB "
        f"chunks) over loopback to gunicorn on {backend}: {elapsed:.1f} s, "
        f"{args.records / elapsed:,.0f} records/s, {size / 1e6 / elapsed:.1f} MB/s"
    )
    print(f"peak RSS (VmHWM, reset before the upload): client {client_peak:.0f} MiB "
          f"(RSS {client_before:.0f} MiB before), gunicorn worker {server_peak:.0f} MiB "
          f"(RSS {server_before:.0f} MiB before)")  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
