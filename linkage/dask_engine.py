"""The engine on a Dask cluster (``dask.distributed``): the same steps as :class:`LocalEngine`,
with the comparison partitions run by the cluster's workers.

Only :meth:`Engine.map_partitions` differs: the corpus (encodings only, never identifiers) is
scattered to every worker once, each partition of candidate pairs becomes one task, and the
results come back in partition order, so the links are exactly those of the local engine.
Blocking, the EM and clustering stay on the client: they are cheap next to the comparisons.

dask is an optional extra (``pip install 'placelink[dask]'``); it is imported only here.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy.typing as npt

from keys.errors import ConfigError
from linkage.blocking import BlockingConfig, Pairs
from linkage.corpus import EncodedCorpus
from linkage.engine import Engine, Scorer
from linkage.fellegi_sunter import FittedModel


def _client(scheduler_address: str, timeout: str) -> Any:
    try:
        from distributed import Client as client_class
    except ImportError:
        raise ConfigError(
            "a Dask scheduler was given but dask.distributed is not installed",
            fix="pip install 'placelink[dask]', or link without a scheduler",
        ) from None
    try:
        connect: Any = client_class
        return connect(scheduler_address, timeout=timeout)
    except OSError:
        raise ConfigError(
            "the Dask scheduler did not answer at the address given",
            fix="check the scheduler address (tcp://HOST:8786) and that the scheduler runs",
        ) from None


class DaskEngine(Engine):
    """Runs comparison partitions as tasks on the Dask cluster at ``scheduler_address``."""

    def __init__(
        self,
        scheduler_address: str,
        *,
        threshold: float | None = None,
        blocking: BlockingConfig | None = None,
        model: FittedModel | None = None,
        connect_timeout: str = "20s",
    ) -> None:
        super().__init__(threshold=threshold, blocking=blocking, model=model)
        self.scheduler_address = scheduler_address
        self.connect_timeout = connect_timeout

    def map_partitions(
        self, scorer: Scorer, corpus: EncodedCorpus, partitions: Sequence[Pairs]
    ) -> list[npt.NDArray[Any]]:
        if not partitions:
            return []
        client = _client(self.scheduler_address, self.connect_timeout)
        try:
            shared = client.scatter(corpus, broadcast=True)
            futures = [client.submit(scorer, shared, part, pure=False) for part in partitions]
            return list(client.gather(futures))
        finally:
            client.close()
