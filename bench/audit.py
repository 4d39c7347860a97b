"""Audit log throughput: appends (file lock, fsync, a signed checkpoint every 64 entries) and
offline verification, on this machine's disk.

    python bench/audit.py [--entries 5000] [--processes 1]

Each append is one fsync, so the append rate is the disk's fsync rate; a hot-spot query adds
two entries (its policy decision and the query). Verification is CPU only (SHA-256 over the
canonical JSON and one Ed25519 check per checkpoint).
"""

from __future__ import annotations

import argparse
import multiprocessing
import sys
import tempfile
import time
from pathlib import Path

from keys import SigningKey
from policies.audit import AuditLog
from policies.audit_store import FileLog
from policies.audit_verify import verify_log

KEY = SigningKey.generate()
PAYLOAD = {
    "analyst": "analyst:0123456789abcdef",
    "query_kind": "table",
    "by": "area",
    "decision": "answered",
    "epsilon": 0.0,
    "treatments": {"rounded": 40, "suppressed-small": 12, "zero": 300},
}


def append_many(path: str, count: int) -> None:
    log = AuditLog(FileLog(Path(path)), actor="linkage-service", signer=KEY)
    for _ in range(count):
        log.append("query", PAYLOAD, policy_id="seabrook-task-force", policy_version="1.0")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--entries", type=int, default=5000)
    parser.add_argument("--processes", type=int, default=1)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="placelink-bench-") as tmp:
        path = Path(tmp) / "audit.jsonl"
        each = args.entries // args.processes
        started = time.perf_counter()
        workers = [
            multiprocessing.Process(target=append_many, args=(str(path), each))
            for _ in range(args.processes)
        ]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        appended = time.perf_counter() - started
        lines = list(FileLog(path).lines())
        started = time.perf_counter()
        verdict = verify_log(lines, trusted_keys=frozenset({KEY.fingerprint}))
        verified = time.perf_counter() - started
        size = path.stat().st_size
    assert verdict.ok, verdict.first_bad
    each_bytes = size / len(lines)
    print(f"{len(lines)} lines ({verdict.checkpoints} checkpoints), {each_bytes:.0f} bytes each")
    print(
        f"append: {each * args.processes / appended:,.0f} entries/s with {args.processes} "
        f"process(es), {appended / (each * args.processes) * 1000:.2f} ms each (fsync'd)"
    )
    print(f"verify: {len(lines) / verified:,.0f} entries/s ({verified:.2f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
