"""The engine on a real local multi-process Dask cluster gets the same links as the local one.

Under CI=true a missing dask.distributed fails this test instead of skipping it.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from pathlib import Path

import pytest

import linkage.engine
from gateway.pipeline import context_without_policy, encode_csv
from gateway.pseudonyms import PseudonymMap
from gateway.schema import default_schema
from keys import new_secret
from keys.errors import ConfigError
from linkage.corpus import EncodedCorpus, build_corpus
from linkage.engine import LocalEngine
from placelink.town import AGENCIES, generate_town, write_canonical_csv
from tests.conftest import require

HAVE_DASK = importlib.util.find_spec("distributed") is not None


@pytest.fixture(scope="module")
def town_corpus(tmp_path_factory: pytest.TempPathFactory) -> EncodedCorpus:
    folder: Path = tmp_path_factory.mktemp("dask-town")
    town = generate_town(seed=9, people=300)
    context = context_without_policy(default_schema(), policy_id="dask-test", epoch=0)
    secret, batches = new_secret(), []
    for agency in AGENCIES:
        path = folder / f"{agency}.csv"
        write_canonical_csv(town.canonical_rows[agency], path)
        batches.append(
            (
                agency,
                encode_csv(path, secret=secret, context=context, pseudonyms=PseudonymMap()).batch,
            )
        )
    return build_corpus(batches)


@pytest.fixture(scope="module")
def scheduler_address() -> Iterator[str]:
    require(HAVE_DASK, "dask.distributed")
    from distributed import LocalCluster

    with LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    ) as cluster:
        yield cluster.scheduler_address


@pytest.mark.slow
def test_dask_engine_gets_the_same_links_as_the_local_engine(
    town_corpus: EncodedCorpus, scheduler_address: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from linkage.dask_engine import DaskEngine

    local = LocalEngine().link(town_corpus)
    monkeypatch.setattr(linkage.engine, "PARTITION_PAIRS", 300)  # several tasks per worker
    distributed = DaskEngine(scheduler_address).link(town_corpus)
    assert local.candidate_pairs > 1_000
    assert distributed == local


def test_dask_engine_without_a_scheduler_says_how_to_fix_it(town_corpus: EncodedCorpus) -> None:
    require(HAVE_DASK, "dask.distributed")
    from linkage.dask_engine import DaskEngine

    with pytest.raises(ConfigError) as caught:
        DaskEngine("tcp://127.0.0.1:9", connect_timeout="1s").link(town_corpus)
    assert "scheduler" in caught.value.message and caught.value.fix
