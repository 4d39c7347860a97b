"""Scale: two synthetic agencies of 1M records each, linked end to end (encoding excluded).

Encodings are generated directly: each field's vocabulary (given names, family names, dates,
postcodes, addresses, drawn with Zipf-like frequencies so that common names make big buckets)
is encoded once with the gateway's real keyed Bloom encoder, and records pick vocabulary rows.
The most common given name is about 1.4% of people and family name 1.8% (Smith is 1.3% in
England and Wales), so people sharing a whole name are realistic, and are compared.
Half of agency B's people are also in agency A; their B records carry errors: a typo-like bit
change in a name (10% each), a different date encoding (5%), a move to another address and
postcode (10%), missing fields (3% each). The NHS number is present for 40% of records.

Timed: everything `Engine.link` does (blocking, comparison, EM, clustering, entity ids) on
the 2M-record corpus. Printed: wall time, peak memory (max RSS of this process), candidate
pairs, reduction ratio, pair completeness, pairwise F1 against the generator's truth.

    python bench/scale.py [--per-agency 1000000] [--overlap 0.5]
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

import numpy as np
import numpy.typing as npt

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gateway.bloom import BloomEncoder
from gateway.schema import default_schema
from linkage.corpus import EncodedCorpus, FieldColumn
from linkage.engine import LocalEngine

Rng = np.random.Generator
U8 = npt.NDArray[np.uint8]
VOCABULARY = {
    "given_name": 5_000,
    "family_name": 50_000,
    "date_of_birth": 36_000,
    "postcode": 200_000,
    "address": 600_000,
}


def _words(rng: Rng, count: int, low: int, high: int) -> list[str]:
    letters = np.array(list("abcdefghijklmnopqrstuvwxyz"))
    lengths = rng.integers(low, high + 1, count)
    return ["".join(rng.choice(letters, n)) for n in lengths]


def _vocabulary(rng: Rng, name: str, count: int) -> list[object]:
    import datetime as dt

    if name == "date_of_birth":
        start = dt.date(1925, 1, 1)
        return [start + dt.timedelta(days=int(d)) for d in rng.permutation(count)]
    if name == "postcode":
        return [
            f"SB{a} {b}{c}"
            for a, b, c in zip(
                rng.integers(1, 99, count),
                rng.integers(0, 10, count),
                _words(rng, count, 2, 2),
                strict=True,
            )
        ]
    if name == "address":
        return [
            f"{n} {w} road"
            for n, w in zip(rng.integers(1, 300, count), _words(rng, count, 5, 10), strict=True)
        ]
    return _words(rng, count, 3, 9)


def encode_vocabularies(rng: Rng) -> dict[str, U8]:
    schema = default_schema()
    encoded = {}
    for name, count in VOCABULARY.items():
        spec = schema.field(name)
        encoder = BloomEncoder(spec, rng.bytes(32))
        values = _vocabulary(rng, name, count)
        encoded[name] = encoder.encode_many(values)  # type: ignore[arg-type]
        print(f"  encoded {count} {name} values", file=sys.stderr)
    return encoded


def zipf_choice(rng: Rng, size: int, count: int, exponent: float) -> npt.NDArray[np.int64]:
    weights = 1.0 / np.arange(1, size + 1) ** exponent
    return rng.choice(size, count, p=weights / weights.sum())


def typo(rng: Rng, rows: U8, share: float) -> U8:
    """A typo-like change: about 12% of a filter's set bits moved elsewhere."""
    out = rows.copy()
    hit = np.flatnonzero(rng.random(len(rows)) < share)
    bits = np.unpackbits(out[hit], axis=1)
    flips = rng.random(bits.shape) < 0.06
    out[hit] = np.packbits(bits ^ flips, axis=1)
    return out


def people(rng: Rng, count: int) -> dict[str, npt.NDArray[np.int64]]:
    return {
        "given_name": zipf_choice(rng, VOCABULARY["given_name"], count, 0.6),
        "family_name": zipf_choice(rng, VOCABULARY["family_name"], count, 0.75),
        "date_of_birth": rng.integers(0, VOCABULARY["date_of_birth"], count),
        "home": rng.integers(0, VOCABULARY["address"], count),
        "nhs": rng.integers(0, 2**63, (count, 2), dtype=np.int64),
    }


def agency_columns(
    rng: Rng,
    vocab: dict[str, U8],
    who: dict[str, npt.NDArray[np.int64]],
    rows: npt.NDArray[np.int64],
    dirty: bool,
) -> dict[str, FieldColumn]:
    count = len(rows)
    home = who["home"][rows].copy()
    if dirty:
        moved = rng.random(count) < 0.10
        home[moved] = rng.integers(0, VOCABULARY["address"], moved.sum())
    chosen = {
        "given_name": vocab["given_name"][who["given_name"][rows]],
        "family_name": vocab["family_name"][who["family_name"][rows]],
        "date_of_birth": vocab["date_of_birth"][who["date_of_birth"][rows]],
        "postcode": vocab["postcode"][home % VOCABULARY["postcode"]],
        "address": vocab["address"][home],
    }
    if dirty:
        for name in ("given_name", "family_name"):
            chosen[name] = typo(rng, chosen[name], 0.10)
        chosen["date_of_birth"] = typo(rng, chosen["date_of_birth"], 0.05)
    columns = {
        name: FieldColumn("bloom", values, rng.random(count) >= 0.03)
        for name, values in chosen.items()
    }
    nhs = np.ascontiguousarray(who["nhs"][rows]).view(np.uint8).reshape(count, 16)
    columns["nhs_number"] = FieldColumn("token", nhs, rng.random(count) < 0.4)
    return columns


def build(
    per_agency: int, overlap: float, seed: int
) -> tuple[EncodedCorpus, npt.NDArray[np.int64]]:
    rng = np.random.default_rng(seed)
    vocab = encode_vocabularies(rng)
    shared = int(per_agency * overlap)
    population = 2 * per_agency - shared
    who = people(rng, population)
    in_a = np.arange(per_agency)
    in_b = np.concatenate([np.arange(shared), np.arange(per_agency, population)])
    a = agency_columns(rng, vocab, who, in_a, dirty=False)
    b = agency_columns(rng, vocab, who, in_b, dirty=True)
    fields = {
        name: FieldColumn(
            a[name].encoding,
            np.ascontiguousarray(np.vstack([a[name].values, b[name].values])),
            np.concatenate([a[name].present, b[name].present]),
        )
        for name in a
    }
    count = len(in_a) + len(in_b)
    index = np.concatenate([np.zeros(len(in_a), np.int32), np.ones(len(in_b), np.int32)])
    pseudonyms = tuple(f"{row:016x}" for row in range(count))
    return EncodedCorpus(("agency_a", "agency_b"), index, pseudonyms, fields), np.concatenate(
        [in_a, in_b]
    )


def pairwise_f1(entity: list[str], person: npt.NDArray[np.int64]) -> tuple[float, float, float]:
    from collections import Counter

    def pairs(counter: Counter[object]) -> int:
        return sum(n * (n - 1) // 2 for n in counter.values())

    both = pairs(Counter(zip(entity, person.tolist(), strict=True)))
    predicted, true = pairs(Counter(entity)), pairs(Counter(person.tolist()))
    precision, recall = both / max(predicted, 1), both / max(true, 1)
    return precision, recall, 2 * precision * recall / max(precision + recall, 1e-12)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--per-agency", type=int, default=1_000_000)
    parser.add_argument("--overlap", type=float, default=0.5)
    parser.add_argument("--seed", type=int, default=3)
    args = parser.parse_args()
    corpus, person = build(args.per_agency, args.overlap, args.seed)
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"generated {len(corpus)} records (encodings), peak RSS so far {rss_before:.0f} MiB",
        file=sys.stderr,
    )
    started = time.perf_counter()
    result = LocalEngine().link(corpus)
    wall = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    precision, recall, f1 = pairwise_f1(result.entity_ids, person)
    print(f"{args.per_agency} x {args.per_agency} records, overlap {args.overlap:.0%}")
    print(f"link wall time {wall:.1f} s (target < 300 s on 2 cores)")
    print(f"peak memory {peak / 1024:.2f} GiB (max RSS of the process, generation included)")
    print(
        f"candidate pairs {result.candidate_pairs}, reduction ratio "
        f"{result.reduction_ratio:.8f}, links {result.links}, "
        f"refused merges {result.refused_merges}"
    )
    print(
        f"pairwise precision {precision:.4f}, recall {recall:.4f}, F1 {f1:.4f}; "
        f"largest entity {result.largest_cluster}"
    )


if __name__ == "__main__":
    main()
