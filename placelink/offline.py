"""The offline commands ``placelink encode`` and ``placelink match`` (used by scripts,
benchmarks and people trying placelink out), over the same code the services run."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from gateway.pipeline import EncodeResult, context_for_policy, context_without_policy, encode_file
from gateway.pseudonyms import PseudonymMap
from gateway.schema import schema_for, shipped_schemas
from keys import read_secret
from keys.epochs import epoch_for, secret_passphrase
from keys.errors import InputError
from policies.clks import EncodedBatch, load_clks
from policies.model import load_policy

if TYPE_CHECKING:  # the linkage side (numba and all) is imported by ``match`` only, not ``encode``
    from linkage.corpus import EncodedCorpus
    from linkage.engine import Engine, LinkResult


def encode_command(
    *,
    secret_file: Path,
    input_path: Path,
    output_path: Path,
    schema_path: Path | None,
    mapping_path: Path | None,
    policy_id: str,
    epoch: int | None,
    policy_path: Path | None,
    strict: bool,
    workers: int = 1,
) -> EncodeResult:
    """Encode one CSV to a .clks file and its local .ids map (epoch: the secret file's)."""
    import datetime as dt

    secret = read_secret(secret_file, passphrase=secret_passphrase)
    epoch = epoch_for(secret, epoch)
    policy = load_policy(policy_path) if policy_path else None
    schema = schema_for(schema_path, pinned=policy.linkage_schema if policy else None)
    if policy is not None:
        context = context_for_policy(policy, schema, epoch=epoch, today=dt.date.today())
    else:
        context = context_without_policy(schema, policy_id=policy_id, epoch=epoch)
    return encode_file(
        input_path,
        output_path,
        secret=secret,
        context=context,
        mapping_path=mapping_path,
        strict=strict,
        workers=workers,
    )


def _read_clks(path: Path) -> EncodedBatch:
    try:
        return load_clks(path.read_bytes())
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror}", fix="check the path") from None


@dataclass
class MatchRun:
    """A finished ``placelink match``: what was linked, and how to name its rows."""

    corpus: EncodedCorpus
    result: LinkResult
    engine: Engine
    record_ids: list[str]

    def row_of(self, name: str) -> int:
        """The corpus row of SOURCE:RECORD_ID (a record ID, or a pseudonym)."""
        source, _, record = name.partition(":")
        for row in range(len(self.corpus)):
            if self.corpus.source_names[self.corpus.source_index[row]] != source:
                continue
            if record in (self.record_ids[row], self.corpus.pseudonyms[row]):
                return row
        raise InputError(
            "--explain names a record that is not in the inputs",
            fix="give SOURCE:RECORD_ID, where SOURCE is an input's file stem",
        )

    def explain(self, left: str, right: str) -> str:
        from linkage.explain import explain_pair, format_explanation

        rows = (self.row_of(left), self.row_of(right))
        explanation = explain_pair(
            self.corpus, self.result, rows, self.engine.blocking_for(self.corpus)
        )
        return format_explanation(explanation, (left, right))

    def write_report(self, folder: Path) -> dict[str, Path]:
        from linkage.weights import write_weight_report

        result = self.result
        if result.histogram is None or result.model is None:
            raise InputError("this run has no weights to chart", fix="link at least two records")
        facts: dict[str, object] = {
            "records": len(self.corpus),
            "sources": ", ".join(self.corpus.source_names),
            "candidate pairs": result.candidate_pairs,
            "reduction ratio": f"{result.reduction_ratio:.6f}",
            "links above the threshold": result.links,
            "merges refused by average linkage": result.refused_merges,
            "entities": result.entity_count,
            "cluster sizes (size: clusters)": result.cluster_sizes,
        }
        return write_weight_report(folder, result.histogram, result.model, facts)


def match_command(inputs: list[Path], output: Path, *, engine: Engine | None = None) -> MatchRun:
    """Link .clks files; write source, record_id, entity_id for every input record."""
    from linkage.corpus import build_corpus
    from linkage.engine import LocalEngine

    stems = [path.stem for path in inputs]
    repeated = sorted({s for s in stems if stems.count(s) > 1})
    if repeated:
        raise InputError(
            f"two inputs share the file stem {repeated[0]!r}",
            fix="rename one: the stem names the source in links.csv",
        )
    batches = [(path.stem, _read_clks(path)) for path in inputs]
    # A shipped schema's names stored as salted copies are compared copy by copy.
    corpus = build_corpus(batches, shipped_schemas().get(batches[0][1].schema_hash))
    engine = engine or LocalEngine()
    result = engine.link(corpus)
    record_ids = _record_ids(inputs, batches)
    with output.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["source", "record_id", "entity_id"])
        for row in range(len(corpus)):
            source = corpus.source_names[corpus.source_index[row]]
            writer.writerow([source, record_ids[row], result.entity_ids[row]])
    return MatchRun(corpus, result, engine, record_ids)


def _record_ids(inputs: list[Path], batches: list[tuple[str, EncodedBatch]]) -> list[str]:
    """Record IDs through the .ids map beside each input, else the pseudonyms."""
    ids: list[str] = []
    for path, (_, batch) in zip(inputs, batches, strict=True):
        local = PseudonymMap.load(path.with_name(path.name + ".ids")).record_for()
        ids += [local.get(p, p) for p in (batch.pseudonym_hex(r) for r in range(len(batch)))]
    return ids
