"""HTTP problem details (RFC 9457) shared by both services: the stable ``type`` URIs, the
mapping from the :class:`~keys.errors.PlacelinkError` hierarchy to a status and a type, and
the JSON body. Free of any web framework: :func:`problem_parts` gives the body, status and
headers, which a Flask view or error handler returns as they are (``make_response``).

A problem's ``type`` is ``PROBLEM_BASE + slug`` and never changes once published (clients and
the services' metrics key on it); ``title`` is the error's message, ``detail`` its fix.
Each service lists its own errors first (:class:`ProblemType`), then :data:`COMMON_TYPES`
(first match wins, so subclasses go before their parents); an error no type matches is a 500
``error``. A type may carry the ``WWW-Authenticate`` challenge its 401 sends.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from keys.errors import (
    AccessError,
    ConfigError,
    InputError,
    PlacelinkError,
    PolicyError,
    StorageError,
)

PROBLEM_BASE = "https://placelink.example/problems/"
PROBLEM_CONTENT_TYPE = "application/problem+json"

ProblemParts = tuple[dict[str, Any], int, dict[str, str]]


@dataclass(frozen=True)
class ProblemType:
    """An error class answered with ``status`` and the type ``PROBLEM_BASE + slug``."""

    error: type[PlacelinkError]
    status: int
    slug: str
    challenge: str = ""  # the WWW-Authenticate value sent with it, if any


COMMON_TYPES: tuple[ProblemType, ...] = (
    ProblemType(AccessError, 403, "forbidden"),
    ProblemType(PolicyError, 403, "policy-refused"),
    ProblemType(InputError, 422, "invalid-input"),
    ProblemType(StorageError, 503, "storage-unavailable"),
    ProblemType(ConfigError, 500, "configuration"),
)


def problem_body(
    status: int, slug: str, title: str, detail: str = "", **extra: Any
) -> dict[str, Any]:
    """The JSON object: ``type``, ``title``, ``status``, ``detail`` and any extension member."""
    body = {"type": PROBLEM_BASE + slug, "title": title, "status": status, "detail": detail}
    return body | extra


def problem_parts(
    status: int, slug: str, title: str, detail: str = "", *, challenge: str = "", **extra: Any
) -> ProblemParts:
    """Body, status and headers of a problem response (a Flask return value as it is)."""
    headers = {"Content-Type": PROBLEM_CONTENT_TYPE}
    if challenge:
        headers["WWW-Authenticate"] = challenge
    return problem_body(status, slug, title, detail, **extra), status, headers


@dataclass(frozen=True)
class ProblemCatalogue:
    """A service's problem types in order: its own errors first, then :data:`COMMON_TYPES`."""

    types: Sequence[ProblemType]

    @classmethod
    def with_common(cls, *own: ProblemType) -> ProblemCatalogue:
        return cls((*own, *COMMON_TYPES))

    def problem_type(self, exc: PlacelinkError) -> ProblemType:
        for kind in self.types:
            if isinstance(exc, kind.error):
                return kind
        return ProblemType(PlacelinkError, 500, "error")

    def parts(self, exc: PlacelinkError) -> ProblemParts:
        """The problem answering ``exc``: its message as the title, its fix as the detail."""
        kind = self.problem_type(exc)
        return problem_parts(kind.status, kind.slug, exc.message, exc.fix, challenge=kind.challenge)
