"""The load driver of bench/load.py, for the end-to-end load and fault tests (one code path:
the tests run the bench at small sizes), and the PostgreSQL those tests need."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path
from types import ModuleType

from tests.conftest import POSTGRES_URL_VARIABLE, _empty_postgres, require

BENCH = Path(__file__).resolve().parents[2] / "bench" / "load.py"


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_load", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_load"] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


bench_load = _load()


def empty_postgres_url() -> str:
    """The test PostgreSQL, emptied (under CI=true a missing one fails the test)."""
    url = os.environ.get(POSTGRES_URL_VARIABLE, "")
    require(bool(url), f"PostgreSQL ({POSTGRES_URL_VARIABLE})")
    _empty_postgres(url)
    return url
