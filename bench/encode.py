"""Gateway encoding speed: placelink against clkhash, whole process against whole process.

    python bench/encode.py [--records 120000] [--seed 11] [--workers 2] [--repeat 3] [--keep DIR]
    python bench/encode.py --records 1000000   # about 5 minutes on 2 cores: the synthetic
                                               # town takes 1.5 min to make, clkhash ~1 min a run

Both encoders read the same canonical CSV (records of the synthetic town, scaled up) and write
their encodings to a file; each is timed from process start to process exit (interpreter start,
imports, reading, normalising/validating, hashing, writing), so neither gets a warm start.

- placelink: ``python -m placelink encode`` with the default linkage schema, with
  ``--workers`` processes (default: two where the machine has two CPUs, as clkhash uses them).
- clkhash (pip ``clkhash``, which pins an old ``cryptography``): run from its own virtual
  environment, made on first use under ``bench/.venv-clkhash`` (git-ignored), with its default
  parallelism (one worker process per CPU) and an equivalent schema: the same fields, bigrams,
  the same number of bit positions per token as placelink's schema, exact tokens for sex and NHS
  number, and one 1024-bit record-level filter (clkhash's default BLAKE2 hashing needs a power
  of two; placelink's field-level filters add up to 1280 bits).

Both run from compiled bytecode, as installed packages do: pip compiled clkhash's modules when it
installed them, and the bench compiles placelink's sources (an editable install, whose bytecode a
``PYTHONDONTWRITEBYTECODE`` environment would otherwise never cache) before it times anything,
and has numba compile and cache the copy loops, as a node's first encode does once.

Each is run ``--repeat`` times, alternately, and its fastest run counts (the run least
disturbed by other work on the machine). Prints records/s for each and the ratio placelink /
clkhash (wall clock; target, design section 8: >= 10x), and the CPU seconds each spent (user +
system, children included), whose ratio a machine shared with other work skews less than it
skews wall-clock time. It also prints each pair's ratio (a clkhash run over the placelink run
just before it): where the machine's speed drifts from minute to minute, the fastest runs of
the two may fall in different minutes, while a pair's two runs share one.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
CLKHASH_VENV = ROOT / "bench" / ".venv-clkhash"
CLKHASH_REQUIREMENT = "clkhash==0.18.3"
# placelink's default schema, field by field: (ngram comparison or exact, bit positions per token)
EQUIVALENT = {
    "given_name": ("ngram", 20),
    "family_name": ("ngram", 20),
    "date_of_birth": ("ngram", 16),
    "sex": ("exact", 20),
    "postcode": ("ngram", 10),
    "address": ("ngram", 16),
    "nhs_number": ("exact", 20),
}
CLKHASH_DRIVER = """
import base64, json, sys
from clkhash import clk
from clkhash.schema import from_json_file
source, schema_path, secret_path, out = sys.argv[1:5]
schema = from_json_file(open(schema_path))
secret = open(secret_path, "rb").read()
with open(source, newline="", encoding="utf-8") as handle:
    clks = clk.generate_clk_from_csv(handle, secret, schema, progress_bar=False)
with open(out, "w") as handle:
    json.dump({"clks": [base64.b64encode(c.tobytes()).decode() for c in clks]}, handle)
"""


def make_records(count: int, seed: int) -> list[dict[str, str]]:
    """``count`` canonical rows: the synthetic town's agencies, scaled up, record IDs unique."""
    sys.path.insert(0, str(ROOT))
    from placelink.town import generate_town

    town = generate_town(seed=seed, people=int(count / 1.25) + 100)
    rows = [row for agency in town.canonical_rows.values() for row in agency]
    if len(rows) < count:
        raise SystemExit(f"the town gave {len(rows)} records, fewer than {count}")
    return rows[:count]


def write_csv(rows: list[dict[str, str]], path: Path) -> None:
    """The canonical columns and the event date, as the gateway reads them."""
    import csv

    from gateway.mapping import CANONICAL_FIELDS

    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=CANONICAL_FIELDS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)


def clkhash_schema() -> dict[str, object]:
    features: list[dict[str, object]] = [{"identifier": "record_id", "ignored": True}]
    for name, (comparison, per_token) in EQUIVALENT.items():
        compare = {"type": "ngram", "n": 2} if comparison == "ngram" else {"type": "exact"}
        features.append(
            {
                "identifier": name,
                "format": {"type": "string", "encoding": "utf-8", "case": "mixed"},
                "hashing": {"comparison": compare, "strategy": {"bitsPerToken": per_token}},
            }
        )
    features.append({"identifier": "event_date", "ignored": True})
    kdf = {"type": "HKDF", "hash": "SHA256", "keySize": 64}
    return {"version": 3, "clkConfig": {"l": 1024, "kdf": kdf}, "features": features}


def ensure_clkhash() -> Path:
    """The clkhash interpreter, installing clkhash into its own virtualenv on first use."""
    python = CLKHASH_VENV / "bin" / "python"
    check = [str(python), "-c", "import clkhash"]
    if python.exists() and subprocess.run(check, capture_output=True).returncode == 0:
        return python
    print(f"installing {CLKHASH_REQUIREMENT} into {CLKHASH_VENV} ...", file=sys.stderr)
    subprocess.run([sys.executable, "-m", "venv", str(CLKHASH_VENV)], check=True)
    pip = [str(python), "-m", "pip", "install", "-q", CLKHASH_REQUIREMENT]
    subprocess.run(pip, check=True)
    return python


def timed(command: list[str]) -> tuple[float, float]:
    """Wall-clock seconds, and CPU seconds (user + system, the process and its children)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run(command, check=True, cwd=ROOT, stdout=subprocess.DEVNULL, timeout=3600)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def fastest(runs: list[tuple[float, float]]) -> tuple[float, float]:
    """The fastest wall-clock run, and the least CPU time of any run."""
    return min(wall for wall, _ in runs), min(cpu for _, cpu in runs)


def run(count: int, seed: int, work: Path, *, workers: int, repeat: int) -> dict[str, Any]:
    rows = make_records(count, seed)
    source = work / "records.csv"
    write_csv(rows, source)
    secret = work / "linkage.secret"
    secret.write_bytes(os.urandom(32))
    schema = work / "clkhash-schema.json"
    schema.write_text(json.dumps(clkhash_schema()), encoding="utf-8")
    driver = work / "clkhash_driver.py"
    driver.write_text(CLKHASH_DRIVER, encoding="utf-8")
    clkhash_python = ensure_clkhash()
    packages = [str(ROOT / name) for name in ("placelink", "gateway", "policies", "keys")]
    subprocess.run([sys.executable, "-m", "compileall", "-q", *packages], check=True)
    # numba's machine code for the copy loops, cached on first use as an installed node's is
    # (compiling it takes seconds; a changed copy_kernels.py makes numba compile it afresh)
    warm = "from gateway import copy_kernels as k\nif k.NUMBA_AVAILABLE: k.compiled_loops()"
    subprocess.run([sys.executable, "-c", warm], check=True, cwd=ROOT)
    placelink = [sys.executable, "-m", "placelink", "encode", "--secret-file", str(secret)]
    placelink += ["--input", str(source), "--output", str(work / "records.clks")]
    placelink += ["--workers", str(workers)]
    clkhash = [str(clkhash_python), str(driver), str(source), str(schema), str(secret)]
    clkhash += [str(work / "records.clkhash.json")]
    placelink_runs, clkhash_runs = [], []
    for _ in range(repeat):
        (work / "records.clks.ids").unlink(missing_ok=True)  # each run encodes afresh
        placelink_runs.append(timed(placelink))
        clkhash_runs.append(timed(clkhash))
    placelink_seconds, placelink_cpu = fastest(placelink_runs)
    clkhash_seconds, clkhash_cpu = fastest(clkhash_runs)
    paired = sorted(c[0] / p[0] for p, c in zip(placelink_runs, clkhash_runs, strict=True))
    return {
        "records": count,
        "placelink_workers": workers,
        "placelink_records_per_s": count / placelink_seconds,
        "clkhash_records_per_s": count / clkhash_seconds,
        "ratio": clkhash_seconds / placelink_seconds,
        "placelink_cpu_s": placelink_cpu,
        "clkhash_cpu_s": clkhash_cpu,
        "cpu_ratio": clkhash_cpu / placelink_cpu,
        "paired_ratios": paired,  # each clkhash run over the placelink run just before it
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=120_000)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument(
        "--workers", type=int, default=min(2, os.cpu_count() or 1), help="placelink processes"
    )
    parser.add_argument("--repeat", type=int, default=3, help="runs of each; the fastest counts")
    parser.add_argument("--keep", help="keep the inputs and outputs in this folder")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())  # other work on the machine
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(args.keep or scratch)
        work.mkdir(parents=True, exist_ok=True)
        figures = run(args.records, args.seed, work, workers=args.workers, repeat=args.repeat)
    if args.json:
        print(json.dumps({**figures, "load_before": load}))
        return
    print(f"records:   {figures['records']}  (cpus: {os.cpu_count()}; load before: {load})")
    workers = f"--workers {figures['placelink_workers']}"
    print(f"placelink: {figures['placelink_records_per_s']:,.0f} records/s  ({workers})")
    print(f"clkhash:   {figures['clkhash_records_per_s']:,.0f} records/s")
    print(f"ratio:     {figures['ratio']:.1f}x  (wall clock; target >= 10x)")
    paired = ", ".join(f"{ratio:.1f}x" for ratio in figures["paired_ratios"])
    print(f"paired:    {paired}  (each run's ratio, its two runs side by side in time)")
    cpu = f"{figures['placelink_cpu_s']:.2f} s against {figures['clkhash_cpu_s']:.2f} s"
    print(f"cpu time:  {cpu}: {figures['cpu_ratio']:.1f}x  (what a busy machine does not skew)")


if __name__ == "__main__":
    main()
