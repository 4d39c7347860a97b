"""Shared fixtures. Under CI=true a test whose real part is missing fails instead of skipping."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import MetaData, create_engine

IN_CI = os.environ.get("CI", "").lower() == "true"


def require(available: bool, what: str) -> None:
    """Skip on a laptop, fail in CI, when a real part (a server, a browser) is missing."""
    if available:
        return
    if IN_CI:
        pytest.fail(f"{what} is required in CI but missing")
    pytest.skip(f"{what} not available")


POSTGRES_URL_VARIABLE = "PLACELINK_TEST_POSTGRES_URL"


def _empty_postgres(url: str) -> None:
    """Drop every table of the test database (the migration history included, and tables
    no model declares any more) so each test starts from nothing."""
    engine = create_engine(url)
    try:
        found = MetaData()
        found.reflect(engine)
        found.drop_all(engine)
    finally:
        engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The same storage tests on SQLite (embedded default) and PostgreSQL (production).

    PostgreSQL comes from PLACELINK_TEST_POSTGRES_URL (`.ci/run` installs and starts it)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'linkage.db'}"
        return
    url = os.environ.get(POSTGRES_URL_VARIABLE, "")
    require(bool(url), f"PostgreSQL ({POSTGRES_URL_VARIABLE})")
    _empty_postgres(url)
    yield url
    _empty_postgres(url)
