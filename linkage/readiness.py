"""Is the linkage service ready to serve? (``GET /readyz``; ``/healthz`` only says it lives.)

Three checks, each ``ok`` or a reason that names no value: the database answers ``SELECT 1``;
its tables are at this code's head migration (an older release still running after a newer
one migrated the database is not ready); and at least one trusted policy is loaded.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine, text
from sqlalchemy.exc import SQLAlchemyError

from keys.errors import StorageError
from linkage.migrate import current_revision, head_revision

OK = "ok"


@dataclass(frozen=True)
class Readiness:
    checks: dict[str, str]

    @property
    def ready(self) -> bool:
        return all(result == OK for result in self.checks.values())


def check_readiness(engine: Engine, policies_loaded: int) -> Readiness:
    checks = {"database": OK, "migrations": OK, "policies": OK}
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
            revision = current_revision(connection)
        head = head_revision()
        if revision != head:
            checks["migrations"] = f"database at {revision or 'no revision'}, head is {head}"
    except SQLAlchemyError as exc:
        checks["database"] = f"unreachable ({type(exc).__name__})"
        checks["migrations"] = "unknown"
    except StorageError as exc:
        checks["migrations"] = exc.message
    if policies_loaded < 1:
        checks["policies"] = "no policy loaded"
    return Readiness(checks)
